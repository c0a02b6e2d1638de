//! The error type: a one-line message for the user and the exit status that
//! goes with it.

use std::fmt;

use crate::exit::Status;

/// A failure that ends the run.
///
/// The message is printed as one stderr line. It names what failed, the value
/// involved and, where there is one, what to do. It never contains a token,
/// nonce, identity signature or credential.
#[derive(Debug)]
pub struct Error {
    /// The class of failure, which selects the exit code.
    pub status: Status,
    /// The message shown to the user.
    pub message: String,
    /// True when the same request may succeed later (a refused connection,
    /// a timeout, HTTP 5xx or 429), so it is worth retrying.
    pub transient: bool,
}

impl Error {
    /// Creates an error of the given class.
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
            transient: false,
        }
    }

    /// Creates an error that a later attempt may not hit.
    pub fn transient(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
            transient: true,
        }
    }

    /// Creates a usage error (exit 64).
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Status::Usage, message)
    }

    /// Creates a local file error (exit 74).
    pub fn file(message: impl Into<String>) -> Error {
        Error::new(Status::LocalFile, message)
    }

    /// Creates an IMDS error (exit 69).
    pub fn imds(message: impl Into<String>) -> Error {
        Error::new(Status::ImdsUnavailable, message)
    }

    /// Creates an invalid-data error (exit 65).
    pub fn invalid_data(message: impl Into<String>) -> Error {
        Error::new(Status::InvalidData, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
