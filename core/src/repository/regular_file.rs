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

/// Opens `name` in the directory `dir` is a handle of, as
/// [`open_for_reading`] opens a path: relative to the handle, so a read of
/// many files neither builds nor walks a path for each, and every file comes
/// from the directory the handle was opened on even if its path is renamed
/// meanwhile.
#[cfg(unix)]
pub fn open_in_directory(dir: &File, name: &std::ffi::OsStr) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags, openat};
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    Ok(File::from(openat(dir, name, flags, Mode::empty())?))
}

/// Why an opened file was not read, before the file's path is attached:
/// only a failure needs the path, so a read of thousands of files does not
/// build one for each.
#[derive(Debug)]
pub enum ReadFailure {
    /// The system refused an operation.
    Io(io::Error),
    /// The handle is not a regular file, or is too large.
    Refused(UnsafeFileError),
}

impl ReadFailure {
    /// The error naming the file at `path`.
    pub fn naming(self, path: &Path) -> Error {
        match self {
            ReadFailure::Io(e) => io_error(READING, path, e),
            ReadFailure::Refused(why) => refuse(READING, path, why),
        }
    }
}

/// Reads an opened `file` (named `path` in errors) if the handle is a
/// regular file of at most `cap` bytes: the type and size are checked on
/// the handle, and nothing past the cap is read. Returns the handle's
/// metadata (what a stat of the path would have said) and the bytes.
pub fn read_opened_regular_file(path: &Path, file: &File, cap: u64) -> Result<(Metadata, Vec<u8>)> {
    read_opened(file, cap).map_err(|failure| failure.naming(path))
}

/// [`read_opened_regular_file`] without the path.
///
/// A file is read with one `read` of the length its handle reported plus a
/// byte. When that read returns exactly the reported length, those bytes are
/// the whole file as the handle's metadata (the stamp its version is made
/// of) describes it, so no second read looks for the end. That does not
/// assume a short read means the end (a network file system such as SMB may
/// return fewer bytes than asked before it): any other count, fewer or one
/// more, reads on to the end, never past the cap. A file changed after its
/// metadata was taken has a new modification time, so the next change check
/// reads it again.
pub fn read_opened(file: &File, cap: u64) -> std::result::Result<(Metadata, Vec<u8>), ReadFailure> {
    let metadata = file.metadata().map_err(ReadFailure::Io)?;
    if !metadata.is_file() {
        return Err(ReadFailure::Refused(UnsafeFileError::NotRegular {
            kind: kind_of(metadata.file_type()),
        }));
    }
    let too_large = || ReadFailure::Refused(UnsafeFileError::TooLarge { cap });
    let len = metadata.len();
    let reported = usize::try_from(len)
        .ok()
        .filter(|_| len <= cap)
        .ok_or_else(too_large)?;
    let mut bytes = vec![0; reported.saturating_add(1)];
    let first = read_some(file, &mut bytes).map_err(ReadFailure::Io)?;
    bytes.truncate(first);
    if first != reported {
        let rest = cap.saturating_add(1).saturating_sub(first as u64);
        file.take(rest)
            .read_to_end(&mut bytes)
            .map_err(ReadFailure::Io)?;
        if bytes.len() as u64 > cap {
            return Err(too_large());
        }
    }
    Ok((metadata, bytes))
}

/// One `read` into `buf`, retried if a signal interrupted it before any
/// byte was read.
fn read_some(mut file: &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
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

    /// Files of every length are read whole, by the one read of their
    /// reported length or by reading on past it.
    #[test]
    fn files_are_read_whole_whatever_their_length() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, 2, 1000, 4096, 65_537] {
            let path = dir.path().join(format!("{len}.xml"));
            let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &content).unwrap();
            let file = open_for_reading(&path).unwrap();
            let (metadata, bytes) = read_opened(&file, MAX_KEY_FILE_LEN).unwrap();
            assert_eq!(
                (metadata.len(), bytes),
                (len as u64, content),
                "{len} bytes"
            );
        }
    }

    /// A regular file holding more than its handle reports (Linux's /proc
    /// files report 0 bytes) is read to its end, and still refused past the
    /// cap: the length taken from the handle only sizes the first read.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_longer_than_its_reported_length_is_read_to_its_end() {
        let path = Path::new("/proc/self/mountinfo");
        let file = open_for_reading(path).unwrap();
        let (metadata, bytes) = read_opened(&file, MAX_KEY_FILE_LEN).unwrap();
        assert_eq!(metadata.len(), 0);
        assert!(bytes.len() > 1, "{} bytes", bytes.len());
        // Its lines are those a plain read finds (the content is the mounts').
        let plain = std::fs::read(path).unwrap();
        let first_line = |b: &[u8]| b.split(|c| *c == b'\n').next().map(<[u8]>::to_vec);
        assert_eq!(first_line(&bytes), first_line(&plain));
        let file = open_for_reading(path).unwrap();
        let refused = read_opened(&file, 1).unwrap_err();
        assert!(matches!(
            refused,
            ReadFailure::Refused(UnsafeFileError::TooLarge { cap: 1 })
        ));
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
