//! Reading key files that anyone with write access to the directory may have
//! planted: only regular files (symlinks are followed, since Kubernetes
//! secret and config-map mounts are symlinks), never blocking on a FIFO or
//! device, and never more than a cap.

use std::fs::{File, Metadata, OpenOptions};
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
/// still caught), that `file` is a regular file; returns its metadata.
fn ensure_regular(action: &'static str, path: &Path, file: &File) -> Result<Metadata> {
    let metadata = file.metadata().map_err(|e| io_error(action, path, e))?;
    refuse_unless_regular(action, path, &metadata)?;
    Ok(metadata)
}

/// Refuses what `metadata` describes unless it is a regular file.
fn refuse_unless_regular(action: &'static str, path: &Path, metadata: &Metadata) -> Result<()> {
    if metadata.is_file() {
        Ok(())
    } else {
        Err(refuse(
            action,
            path,
            UnsafeFileError::NotRegular {
                kind: kind_of(metadata.file_type()),
            },
        ))
    }
}

const READING: &str = "reading";

/// Reads `path` if it is a regular file (following symlinks) of at most
/// `cap` bytes, given the `metadata` of `path` (following symlinks): what it
/// describes is refused before opening (opening some devices has effects of
/// its own), and the opened handle is checked again. FIFOs, sockets, devices
/// and directories are refused without blocking; larger files are refused
/// without reading past the cap. Errors are [`Error::Io`] naming the file,
/// with an [`UnsafeFileError`] source for refused files. Also returns the
/// handle's metadata.
pub fn read_checked_regular_file(
    path: &Path,
    metadata: &Metadata,
    cap: u64,
) -> Result<(Metadata, Vec<u8>)> {
    refuse_unless_regular(READING, path, metadata)?;
    let file = open_for_reading(path).map_err(|e| io_error(READING, path, e))?;
    read_opened_regular_file(path, &file, cap)
}

/// Opens `path` for reading (following symlinks) without blocking on a
/// FIFO: for a name the directory listing already typed as a regular file,
/// so that no stat precedes the open. Read it with
/// [`read_opened_regular_file`], which checks the handle.
pub fn open_for_reading(path: &Path) -> io::Result<File> {
    guarded(OpenOptions::new().read(true), false).open(path)
}

/// Reads an opened `file` (named `path` in errors) if the handle is a
/// regular file of at most `cap` bytes: the type and size are checked on
/// the handle, and nothing past the cap is read. Returns the handle's
/// metadata (what a stat of the path would have said) and the bytes.
pub fn read_opened_regular_file(path: &Path, file: &File, cap: u64) -> Result<(Metadata, Vec<u8>)> {
    let metadata = ensure_regular(READING, path, file)?;
    let len = metadata.len();
    if len > cap {
        return Err(refuse(READING, path, UnsafeFileError::TooLarge { cap }));
    }
    // Sized from the handle's length, so a file that did not change is read
    // with one read plus the read that finds its end. The file may grow
    // between the check and the read: never read past the cap.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(READING, path, e))?;
    if bytes.len() as u64 > cap {
        return Err(refuse(READING, path, UnsafeFileError::TooLarge { cap }));
    }
    Ok((metadata, bytes))
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

    fn read_regular_file(path: &Path, cap: u64) -> Result<Vec<u8>> {
        let metadata = std::fs::metadata(path).map_err(|e| io_error(READING, path, e))?;
        read_checked_regular_file(path, &metadata, cap).map(|(_, bytes)| bytes)
    }

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

    /// What a file typed as regular by the directory listing but swapped
    /// since (for a FIFO, a directory, a larger file) meets: the open does
    /// not wait and the handle is refused, naming the file.
    #[test]
    fn an_opened_handle_is_checked_not_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.xml");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let big = dir.path().join("big.xml");
        std::fs::write(&big, vec![b' '; 11]).unwrap();
        type Expected = fn(&UnsafeFileError) -> bool;
        let cases: [(&Path, u64, Expected); 3] = [
            // No writer: without O_NONBLOCK this open would wait forever.
            (&fifo, MAX_KEY_FILE_LEN, |r| {
                matches!(
                    r,
                    UnsafeFileError::NotRegular {
                        kind: "a FIFO (named pipe)"
                    }
                )
            }),
            (dir.path(), MAX_KEY_FILE_LEN, |r| {
                matches!(
                    r,
                    UnsafeFileError::NotRegular {
                        kind: "a directory"
                    }
                )
            }),
            (&big, 10, |r| {
                matches!(r, UnsafeFileError::TooLarge { cap: 10 })
            }),
        ];
        for (path, cap, expected) in cases {
            let file = open_for_reading(path).unwrap();
            let e = read_opened_regular_file(path, &file, cap).unwrap_err();
            assert!(refused_as(&e).is_some_and(expected), "{e}");
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        let file = open_for_reading(&big).unwrap();
        let (metadata, bytes) = read_opened_regular_file(&big, &file, 11).unwrap();
        assert_eq!((metadata.len(), bytes.len()), (11, 11));
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
