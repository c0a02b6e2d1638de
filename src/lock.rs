//! One run at a time: an exclusive lock on a file beside the nonce.
//!
//! Two first runs racing (a boot script and a timer, say) must not each
//! create a nonce and log in with it: the second would meet "client nonce
//! mismatch" and the instance would look compromised. The lock serialises
//! them; the second run waits, then reuses the first one's nonce.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::exit::Status;
use crate::log::Log;
use crate::retry::Retry;

/// How often a waiting run tries the lock again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A held lock, released when dropped (or when the process dies, since
/// `flock` locks belong to the open file).
#[derive(Debug)]
pub struct RunLock {
    /// The open lock file; closing it releases the lock.
    _file: File,
}

/// Returns the lock path for a state file: `FILE.lock` beside it.
pub fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the exclusive lock at `path`, waiting while another run holds it,
/// until the run's retry deadline.
///
/// Returns `None` when the lock file's directory is on a read-only file
/// system.
///
/// # Errors
///
/// A local file error when the lock file cannot be opened, and a
/// [`Status::Locked`] error when the deadline passes while waiting.
pub fn acquire(path: &Path, retry: &Retry, log: Log) -> Result<Option<RunLock>> {
    let file = match OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        // A read-only state directory cannot hold a lock, but then no run
        // can create a nonce there either, so there is nothing to serialise.
        Err(err) if err.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
            log.step(format!(
                "lock: {} is on a read-only file system; running without the lock",
                path.display()
            ));
            return Ok(None);
        }
        Err(err) => {
            return Err(Error::file(format!(
                "cannot open lock file {}: {err}",
                path.display()
            )))
        }
    };

    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                log.step(format!("lock: holding {}", path.display()));
                return Ok(Some(RunLock { _file: file }));
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(Error::file(format!(
                    "cannot lock {}: {err}",
                    path.display()
                )));
            }
        }
        if retry.remaining() < POLL_INTERVAL {
            return Err(Error::new(
                Status::Locked,
                format!(
                    "another vault-stork run holds the lock {} and did not finish within --max-wait; let it finish, or raise --max-wait",
                    path.display()
                ),
            ));
        }
        if !announced {
            log.step(format!(
                "lock: waiting for another run to release {}",
                path.display()
            ));
            announced = true;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_path_is_beside_the_file() {
        assert_eq!(
            lock_path(Path::new("/var/lib/stork/nonce")),
            PathBuf::from("/var/lib/stork/nonce.lock")
        );
    }

    #[test]
    fn second_holder_times_out_with_locked_status() {
        let dir = std::env::temp_dir().join(format!("vault-stork-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nonce.lock");
        let quiet = Log { verbose: false };
        let first = acquire(&path, &Retry::once(), quiet).unwrap();

        let short = Retry::start(
            Duration::from_millis(1),
            Duration::from_millis(1),
            Duration::from_millis(250),
        );
        let err = acquire(&path, &short, quiet).unwrap_err();
        assert_eq!(err.status, Status::Locked);
        assert!(err.message.contains("nonce.lock"), "{}", err.message);

        drop(first);
        assert!(acquire(&path, &Retry::once(), quiet).is_ok());
    }
}
