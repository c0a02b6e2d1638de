//! The nonce and token files.
//!
//! Both are written the same durable way: a temporary file in the target's
//! own directory, created with its final mode, filled, flushed with fsync,
//! then moved into place and the directory flushed too. A reader therefore
//! sees either the old file or the complete new one, and the secret is never
//! readable with a wider mode than requested, not even for an instant.
//!
//! The nonce gets one guarantee more: once a non-empty nonce is on disk it is
//! never replaced, because losing it locks the instance out of Vault.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use crate::base64;
use crate::error::{Error, Result};

/// Bytes of randomness in a new nonce; base64url makes them 88 characters,
/// within Vault's 128-character limit on nonces.
const NONCE_BYTES: usize = 64;

/// Upper bound on the size of a nonce file we read. Anything larger is not a
/// nonce this tool or Vault would produce.
const MAX_NONCE_FILE: u64 = 4096;

/// Parses a file mode given in octal, such as `640`, `0640` or `0o640`.
///
/// # Errors
///
/// A usage error naming `flag` when the value is not octal or has bits
/// outside `0o777` (setuid, setgid and sticky bits make no sense here).
pub fn parse_mode(flag: &str, value: &str) -> Result<u32> {
    let digits = value.strip_prefix("0o").unwrap_or(value);
    let mode = u32::from_str_radix(digits, 8).map_err(|_| {
        Error::usage(format!(
            "invalid {flag} {value:?}: expected an octal file mode such as 640 or 0600"
        ))
    })?;
    if digits.is_empty() || mode > 0o777 {
        return Err(Error::usage(format!(
            "invalid {flag} {value:?}: expected an octal file mode between 000 and 777"
        )));
    }
    Ok(mode)
}

/// Checks that `path` names a file (not a directory) in a directory that
/// exists.
///
/// Parents are not created: a missing directory usually means a typo or a
/// volume that is not mounted yet, and writing a secret elsewhere would hide
/// that.
///
/// # Errors
///
/// A local file error naming the directory and the flag it came from.
pub fn check_parent_dir(flag: &str, path: &Path) -> Result<()> {
    if path.file_name().is_none() || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(Error::usage(format!(
            "invalid {flag} {:?}: expected a file path",
            path.display().to_string()
        )));
    }
    if path.is_dir() {
        return Err(Error::file(format!(
            "{flag} {} is a directory; expected a file path inside it",
            path.display()
        )));
    }
    let dir = parent_dir(path);
    match fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::file(format!(
            "{} is not a directory (from {flag} {})",
            dir.display(),
            path.display()
        ))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(Error::file(format!(
            "directory {} does not exist (from {flag} {}); create it first",
            dir.display(),
            path.display()
        ))),
        Err(err) => Err(Error::file(format!(
            "cannot access directory {}: {err}",
            dir.display()
        ))),
    }
}

/// Reads the nonce stored at `path`.
///
/// Returns `None` when the file does not exist or holds only whitespace: in
/// both cases there is no nonce to lose and a new one may be created.
///
/// # Errors
///
/// A local file error when the file cannot be read, is not a regular file,
/// is too large, or contains characters no nonce has. The message never
/// includes the file's contents.
pub fn load_nonce(path: &Path) -> Result<Option<String>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(Error::file(format!(
                "cannot read nonce file {}: {err}",
                path.display()
            )))
        }
    };
    let meta = file
        .metadata()
        .map_err(|err| Error::file(format!("cannot read nonce file {}: {err}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::file(format!(
            "nonce path {} is not a regular file",
            path.display()
        )));
    }

    let mut raw = Vec::new();
    file.take(MAX_NONCE_FILE + 1)
        .read_to_end(&mut raw)
        .map_err(|err| Error::file(format!("cannot read nonce file {}: {err}", path.display())))?;
    if raw.len() as u64 > MAX_NONCE_FILE {
        return Err(Error::file(format!(
            "nonce file {} is larger than {MAX_NONCE_FILE} bytes; it does not hold a nonce",
            path.display()
        )));
    }

    let nonce = String::from_utf8(raw)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| text.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Error::file(format!(
                "nonce file {} holds non-printable characters; it does not hold a nonce (move it away only if you are sure)",
                path.display()
            ))
        })?;
    Ok(if nonce.is_empty() { None } else { Some(nonce) })
}

/// Generates a new nonce: 64 bytes from the operating system's CSPRNG,
/// base64url-encoded with padding (88 characters).
///
/// # Errors
///
/// An internal error if the operating system's random source fails.
pub fn generate_nonce() -> Result<String> {
    let mut bytes = [0u8; NONCE_BYTES];
    SystemRandom::new().fill(&mut bytes).map_err(|_| {
        Error::new(
            crate::exit::Status::Internal,
            "the operating system's random number generator failed",
        )
    })?;
    Ok(base64::encode_url_safe(&bytes))
}

/// Stores a new nonce at `path` durably, without replacing a nonce that is
/// already there, and returns the nonce that is on disk afterwards.
///
/// The new file is published with a hard link, which fails if the name
/// exists, so even a concurrent writer cannot make us clobber its nonce. If a
/// non-empty nonce appeared meanwhile, that one is returned instead of ours.
///
/// # Errors
///
/// A local file error naming the path when the write, flush or link fails.
pub fn store_nonce(path: &Path, nonce: &str, mode: u32) -> Result<String> {
    let temp = write_temp(path, nonce.as_bytes(), mode, "nonce")?;

    let published = match fs::hard_link(&temp, path) {
        Ok(()) => Ok(nonce.to_owned()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => match load_nonce(path) {
            // Another run stored a nonce between our read and our link.
            Ok(Some(existing)) => Ok(existing),
            // The name is an empty file or a dangling link: no nonce to
            // lose, so replacing it is safe.
            Ok(None) => fs::rename(&temp, path)
                .map(|()| nonce.to_owned())
                .map_err(|err| {
                    Error::file(format!("cannot write nonce file {}: {err}", path.display()))
                }),
            Err(err) => Err(err),
        },
        Err(err) => Err(Error::file(format!(
            "cannot write nonce file {}: {err}",
            path.display()
        ))),
    };

    // After a link the temporary name is redundant; after a rename it is gone.
    let _ = fs::remove_file(&temp);
    let nonce = published?;
    sync_dir(path, "nonce")?;
    Ok(nonce)
}

/// Replaces the token file at `path` atomically with `token`.
///
/// A symbolic link at `path` is replaced by the new file, never followed.
/// The file gets no trailing newline, so `$(cat FILE)` and tools written for
/// the original stork read it unchanged.
///
/// # Errors
///
/// A local file error naming the path; the old file is then left as it was.
pub fn write_token(path: &Path, token: &str, mode: u32) -> Result<()> {
    let temp = write_temp(path, token.as_bytes(), mode, "token")?;
    if let Err(err) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(Error::file(format!(
            "cannot replace token file {}: {err}",
            path.display()
        )));
    }
    sync_dir(path, "token")
}

/// Returns the permission bits of the file at `path`, if it can be read.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path)
        .ok()
        .map(|meta| meta.permissions().mode() & 0o777)
}

/// Removes temporary files that an earlier run, killed between creating
/// and renaming them, left beside `path`. Call it only while holding the
/// run lock, so no live run's temporary file is taken.
pub fn remove_stale_temps(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(&prefix) && file_name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `contents` to a new temporary file beside `path`, with exactly
/// `mode`, flushed to disk. Removes it again on failure.
fn write_temp(path: &Path, contents: &[u8], mode: u32, what: &str) -> Result<PathBuf> {
    let temp = temp_path(path)?;
    let result = (|| -> io::Result<()> {
        // The mode is given at creation so the file is never wider than
        // requested; umask may narrow it, so it is set exactly afterwards.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(temp),
        Err(err) => {
            let _ = fs::remove_file(&temp);
            Err(Error::file(format!(
                "cannot write {what} file {} (via {}): {err}",
                path.display(),
                temp.display()
            )))
        }
    }
}

/// Returns a fresh hidden name in the directory of `path`.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::usage(format!("{} does not name a file", path.display())))?;
    let mut suffix = [0u8; 6];
    SystemRandom::new().fill(&mut suffix).map_err(|_| {
        Error::new(
            crate::exit::Status::Internal,
            "the operating system's random number generator failed",
        )
    })?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let temp_name = format!(
        ".{}.{}.{suffix}.tmp",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(parent_dir(path).join(temp_name))
}

/// Flushes the directory entry of `path`, so a rename survives a power cut.
fn sync_dir(path: &Path, what: &str) -> Result<()> {
    let dir = parent_dir(path);
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|err| {
        Error::file(format!(
            "cannot flush directory {} after writing the {what}: {err}",
            dir.display()
        ))
    })
}

/// Returns the directory holding `path`, `.` for a bare file name.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vault-stork-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn parse_mode_accepts_octal_forms() {
        assert_eq!(parse_mode("--token-mode", "640").unwrap(), 0o640);
        assert_eq!(parse_mode("--token-mode", "0640").unwrap(), 0o640);
        assert_eq!(parse_mode("--token-mode", "0o600").unwrap(), 0o600);
        assert_eq!(parse_mode("--token-mode", "0").unwrap(), 0);
    }

    #[test]
    fn parse_mode_rejects_bad_values() {
        for bad in ["", "0o", "648", "rw-r-----", "1777", "-1", "0x1a4"] {
            let err = parse_mode("--token-mode", bad).unwrap_err();
            assert_eq!(err.status, crate::exit::Status::Usage, "value {bad:?}");
            assert!(
                err.message.contains("--token-mode"),
                "message names the flag: {}",
                err.message
            );
        }
    }

    #[test]
    fn nonce_generated_is_88_url_safe_chars() {
        let nonce = generate_nonce().unwrap();
        assert_eq!(nonce.len(), 88);
        assert!(nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)));
        assert_ne!(nonce, generate_nonce().unwrap());
    }

    #[test]
    fn load_nonce_missing_or_blank_is_none() {
        let dir = scratch_dir("blank");
        assert_eq!(load_nonce(&dir.join("absent")).unwrap(), None);
        fs::write(dir.join("blank"), " \n\t").unwrap();
        assert_eq!(load_nonce(&dir.join("blank")).unwrap(), None);
    }

    #[test]
    fn load_nonce_trims_whitespace() {
        let dir = scratch_dir("trim");
        fs::write(dir.join("nonce"), "  abc-123\n").unwrap();
        assert_eq!(
            load_nonce(&dir.join("nonce")).unwrap().as_deref(),
            Some("abc-123")
        );
    }

    #[test]
    fn load_nonce_rejects_binary_without_echoing_it() {
        let dir = scratch_dir("binary");
        fs::write(dir.join("nonce"), b"secret\x00\x01").unwrap();
        let err = load_nonce(&dir.join("nonce")).unwrap_err();
        assert_eq!(err.status, crate::exit::Status::LocalFile);
        assert!(!err.message.contains("secret"));
    }

    #[test]
    fn store_nonce_creates_file_with_mode() {
        let dir = scratch_dir("store");
        let path = dir.join("nonce");
        assert_eq!(store_nonce(&path, "first", 0o600).unwrap(), "first");
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(mode_of(&path), 0o600);
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file removed");
    }

    #[test]
    fn store_nonce_never_replaces_existing_nonce() {
        let dir = scratch_dir("keep");
        let path = dir.join("nonce");
        fs::write(&path, "original").unwrap();
        assert_eq!(store_nonce(&path, "second", 0o600).unwrap(), "original");
        assert_eq!(fs::read_to_string(&path).unwrap(), "original");
    }

    #[test]
    fn store_nonce_replaces_empty_file() {
        let dir = scratch_dir("empty");
        let path = dir.join("nonce");
        fs::write(&path, "").unwrap();
        assert_eq!(store_nonce(&path, "fresh", 0o600).unwrap(), "fresh");
        assert_eq!(fs::read_to_string(&path).unwrap(), "fresh");
    }

    #[test]
    fn write_token_replaces_atomically_with_mode() {
        let dir = scratch_dir("token");
        let path = dir.join("token");
        fs::write(&path, "old").unwrap();
        write_token(&path, "s.new", 0o640).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "s.new");
        assert_eq!(mode_of(&path), 0o640);
    }

    #[test]
    fn write_token_replaces_symlink_instead_of_following() {
        let dir = scratch_dir("symlink");
        let target = dir.join("target");
        fs::write(&target, "untouched").unwrap();
        let path = dir.join("token");
        symlink(&target, &path).unwrap();
        write_token(&path, "s.new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "untouched");
        assert!(!fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&path).unwrap(), "s.new");
    }

    #[test]
    fn stale_temps_are_removed_and_others_kept() {
        let dir = scratch_dir("stale");
        let path = dir.join("token");
        fs::write(dir.join(".token.123.abcdef.tmp"), "partial").unwrap();
        fs::write(dir.join(".other.123.abcdef.tmp"), "not ours").unwrap();
        fs::write(&path, "kept").unwrap();
        remove_stale_temps(&path);
        assert!(!dir.join(".token.123.abcdef.tmp").exists());
        assert!(dir.join(".other.123.abcdef.tmp").exists());
        assert!(path.exists());
    }

    #[test]
    fn check_parent_dir_names_missing_directory() {
        let dir = scratch_dir("parent");
        let err = check_parent_dir("--token", &dir.join("missing/token")).unwrap_err();
        assert_eq!(err.status, crate::exit::Status::LocalFile);
        assert!(err.message.contains("missing"), "{}", err.message);
        assert!(err.message.contains("--token"), "{}", err.message);
        assert!(check_parent_dir("--token", &dir.join("token")).is_ok());
        assert!(check_parent_dir("--token", Path::new("bare-name")).is_ok());
        assert_eq!(
            check_parent_dir("--token", &dir).unwrap_err().status,
            crate::exit::Status::LocalFile
        );
        assert_eq!(
            check_parent_dir("--token", Path::new("/"))
                .unwrap_err()
                .status,
            crate::exit::Status::Usage
        );
        assert_eq!(
            check_parent_dir("--token", Path::new(""))
                .unwrap_err()
                .status,
            crate::exit::Status::Usage
        );
    }
}
