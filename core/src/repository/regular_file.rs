//! Reading key files that anyone with write access to the directory may have
//! planted: only regular files (symlinks are followed, since Kubernetes
//! secret and config-map mounts are symlinks), never blocking on a FIFO or
//! device, and never more than a cap.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// The largest key file read: a key is 1–2 KB, so anything over 1 MiB is
/// not a key and must not exhaust memory.
pub const MAX_KEY_FILE_LEN: u64 = 1024 * 1024;

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnsafeFileError {
    /// Not a regular file (after following symlinks).
    #[error("is {kind}, not a regular file")]
    NotRegular {
        /// What it is instead, e.g. "a FIFO (named pipe)".
        kind: &'static str,
    },
    /// Larger than the cap.
    #[error("is larger than {cap} bytes, too large for a key file")]
    TooLarge {
        /// The cap, in bytes.
        cap: u64,
    },
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

fn refuse(action: &'static str, path: &Path, why: UnsafeFileError) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, why),
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Adds `O_NONBLOCK` (and `O_NOFOLLOW` when `no_follow`) on Unix: opening a
/// FIFO without a writer then returns at once instead of waiting.
fn guarded(options: &mut OpenOptions, no_follow: bool) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let follow = if no_follow { libc::O_NOFOLLOW } else { 0 };
        options.custom_flags(libc::O_NONBLOCK | follow);
    }
    #[cfg(not(unix))]
    let _ = no_follow;
    options
}

/// Checks, on the opened handle (so a file swapped after a path check is
/// still caught), that `file` is a regular file.
fn ensure_regular(action: &'static str, path: &Path, file: &File) -> Result<u64> {
    let metadata = file.metadata().map_err(|e| io_error(action, path, e))?;
    if !metadata.is_file() {
        return Err(refuse(
            action,
            path,
            UnsafeFileError::NotRegular {
                kind: kind_of(metadata.file_type()),
            },
        ));
    }
    Ok(metadata.len())
}

/// Reads `path` if it is a regular file (following symlinks) of at most
/// `cap` bytes. FIFOs, sockets, devices and directories are refused without
/// blocking; larger files are refused without reading past the cap. Errors
/// are [`Error::Io`] naming the file, with an [`UnsafeFileError`] source for
/// refused files.
pub fn read_regular_file(path: &Path, cap: u64) -> Result<Vec<u8>> {
    const ACTION: &str = "reading";
    // Refuse what the path names before opening: opening some devices has
    // effects of its own.
    let metadata = std::fs::metadata(path).map_err(|e| io_error(ACTION, path, e))?;
    if !metadata.is_file() {
        return Err(refuse(
            ACTION,
            path,
            UnsafeFileError::NotRegular {
                kind: kind_of(metadata.file_type()),
            },
        ));
    }
    let file = guarded(OpenOptions::new().read(true), false)
        .open(path)
        .map_err(|e| io_error(ACTION, path, e))?;
    let len = ensure_regular(ACTION, path, &file)?;
    if len > cap {
        return Err(refuse(ACTION, path, UnsafeFileError::TooLarge { cap }));
    }
    // The file may grow between the check and the read: never read past the cap.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(ACTION, path, e))?;
    if bytes.len() as u64 > cap {
        return Err(refuse(ACTION, path, UnsafeFileError::TooLarge { cap }));
    }
    Ok(bytes)
}

/// Opens (creating it if missing) a lock file for writing: never through a
/// symlink (`O_NOFOLLOW`), never blocking on a FIFO, and only if it is a
/// regular file.
pub fn open_lock_file(path: &Path) -> Result<File> {
    const ACTION: &str = "opening";
    let file = guarded(
        OpenOptions::new().create(true).truncate(false).write(true),
        true,
    )
    .open(path)
    .map_err(|e| io_error(ACTION, path, e))?;
    ensure_regular(ACTION, path, &file)?;
    Ok(file)
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn refused_as(e: &Error) -> Option<&UnsafeFileError> {
        match e {
            Error::Io { source, .. } => source.get_ref()?.downcast_ref::<UnsafeFileError>(),
            _ => None,
        }
    }

    #[test]
    fn reads_regular_files_and_symlinks_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.xml");
        std::fs::write(&file, b"<a/>").unwrap();
        let link = dir.path().join("link.xml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_regular_file(&file, 10).unwrap(), b"<a/>");
        assert_eq!(read_regular_file(&link, 10).unwrap(), b"<a/>");
    }

    #[test]
    fn refuses_devices_directories_and_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let zero = dir.path().join("zero.xml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read_regular_file(&zero, MAX_KEY_FILE_LEN).unwrap_err();
        assert!(matches!(
            refused_as(&e),
            Some(UnsafeFileError::NotRegular {
                kind: "a character device"
            })
        ));
        assert!(e.to_string().contains("zero.xml"), "{e}");
        let e = read_regular_file(dir.path(), MAX_KEY_FILE_LEN).unwrap_err();
        assert!(matches!(
            refused_as(&e),
            Some(UnsafeFileError::NotRegular {
                kind: "a directory"
            })
        ));
        let big = dir.path().join("big.xml");
        std::fs::write(&big, vec![b' '; 11]).unwrap();
        let e = read_regular_file(&big, 10).unwrap_err();
        assert!(matches!(
            refused_as(&e),
            Some(UnsafeFileError::TooLarge { cap: 10 })
        ));
        assert_eq!(read_regular_file(&big, 11).unwrap().len(), 11);
    }

    #[test]
    fn lock_file_is_never_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        let lock = dir.path().join(".lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let e = open_lock_file(&lock).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(!target.exists(), "the symlink was followed");
        let plain = dir.path().join(".plain-lock");
        open_lock_file(&plain).unwrap();
        open_lock_file(&plain).unwrap();
    }
}
