//! Exit codes: one per class of failure, so that scripts and alarms can act
//! on the class without parsing messages.
//!
//! The values follow `sysexits.h` where a class fits one of its meanings.
//! Codes 79 to 81 are this tool's own, above the sysexits range. Every value
//! here is part of the command-line interface: never renumber one.

/// The class of a run's outcome, which decides the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The login succeeded and the files were written.
    Success,
    /// A bug or a state the program did not expect.
    Internal,
    /// A flag or environment variable is missing or malformed (EX_USAGE).
    Usage,
    /// Input data is malformed: a `--pkcs7` value that is not base64, an
    /// identity document IMDS returned broken (EX_DATAERR).
    InvalidData,
    /// IMDS is disabled, unreachable, or returned an error (EX_UNAVAILABLE).
    ImdsUnavailable,
    /// A local file or directory could not be read or written (EX_IOERR).
    LocalFile,
    /// Vault could not be reached, timed out, or returned 5xx or 429, so a
    /// later run may succeed (EX_TEMPFAIL).
    VaultUnavailable,
    /// Vault returned 2xx but the reply is not a usable login (EX_PROTOCOL).
    VaultProtocol,
    /// Vault rejected the login: permission denied, role not found, instance
    /// not running, bound mismatch, invalid request (EX_NOPERM).
    LoginRejected,
    /// AWS credentials for the IAM method are missing, malformed or expired
    /// (EX_CONFIG).
    Credentials,
    /// The TLS connection to Vault failed: certificate not trusted, name
    /// mismatch, handshake failure.
    Tls,
    /// Vault reported "client nonce mismatch": the instance was already logged
    /// in with another nonce, possibly by someone else.
    NonceMismatch,
    /// Another run held the lock until the `--max-wait` deadline passed.
    Locked,
}

impl Status {
    /// Every status in table order, for help text and tests.
    pub const ALL: [Status; 13] = [
        Status::Success,
        Status::Internal,
        Status::Usage,
        Status::InvalidData,
        Status::ImdsUnavailable,
        Status::LocalFile,
        Status::VaultUnavailable,
        Status::VaultProtocol,
        Status::LoginRejected,
        Status::Credentials,
        Status::Tls,
        Status::NonceMismatch,
        Status::Locked,
    ];

    /// Returns the process exit code for this status.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Internal => 1,
            Status::Usage => 64,
            Status::InvalidData => 65,
            Status::ImdsUnavailable => 69,
            Status::LocalFile => 74,
            Status::VaultUnavailable => 75,
            Status::VaultProtocol => 76,
            Status::LoginRejected => 77,
            Status::Credentials => 78,
            Status::Tls => 79,
            Status::NonceMismatch => 80,
            Status::Locked => 81,
        }
    }

    /// Returns a short description for the exit-code table in `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Success => "success: token (and nonce) written",
            Status::Internal => "internal error (please report it)",
            Status::Usage => "usage error: missing or malformed flag or variable",
            Status::InvalidData => "invalid input data (e.g. --pkcs7 is not base64)",
            Status::ImdsUnavailable => "instance metadata service disabled, unreachable or failing",
            Status::LocalFile => "local file error (token, nonce or input file)",
            Status::VaultUnavailable => {
                "Vault unreachable, timed out, sealed or 5xx until --max-wait passed"
            }
            Status::VaultProtocol => "Vault reply not understood (no client_token)",
            Status::LoginRejected => "login rejected by Vault (permission denied, role, bounds)",
            Status::Credentials => "AWS credentials missing, malformed or expired (IAM method)",
            Status::Tls => "TLS failure talking to Vault (untrusted certificate, name)",
            Status::NonceMismatch => {
                "client nonce mismatch: the nonce file does not match Vault's record"
            }
            Status::Locked => "another run held the lock until --max-wait passed",
        }
    }
}
