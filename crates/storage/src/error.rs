//! The one error type of the storage layer. Every variant that touches the disk names the
//! file and the operation, so a message shown to the user ("cannot create /x/y: Permission
//! denied") is enough to act on without a log.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What the storage layer was doing when an I/O call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOp {
    /// Creating a directory or a new file.
    Create,
    /// Opening an existing file or directory.
    Open,
    /// Reading file contents.
    Read,
    /// Writing file contents.
    Write,
    /// Changing a file's length (`set_len`).
    Resize,
    /// Flushing a file or directory to stable storage (`fsync`).
    Sync,
    /// Reading metadata (`stat`).
    Stat,
    /// Renaming a file into place.
    Rename,
    /// Listing a directory.
    List,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOp::Create => "create",
            IoOp::Open => "open",
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Resize => "resize",
            IoOp::Sync => "sync",
            IoOp::Stat => "stat",
            IoOp::Rename => "rename",
            IoOp::List => "list",
        })
    }
}

/// Everything that can go wrong while laying out, reading, writing, verifying, resuming or
/// hashing torrent content.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed; names the operation and the path it was applied to.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// The operation that failed.
        op: IoOp,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// A file path component is empty, `.`, `..`, or contains `/`, `\` or NUL; nothing was
    /// created on disk.
    #[error("unsafe path component {component:?} in file {file}")]
    UnsafeComponent {
        /// Index of the offending file in the torrent's file list.
        file: usize,
        /// The refused component, verbatim.
        component: String,
    },
    /// A file has no path components at all.
    #[error("file {file} has an empty path")]
    EmptyPath {
        /// Index of the offending file.
        file: usize,
    },
    /// Two files would land on the same path, or one file's path is a directory of another.
    #[error("file {file} clashes with file {other} at {}", path.display())]
    PathClash {
        /// Index of the later file.
        file: usize,
        /// Index of the earlier file it clashes with.
        other: usize,
        /// The shared path, relative to the download folder.
        path: PathBuf,
    },
    /// The piece length is zero, the total length is zero or the piece count overflows `u32`.
    #[error("invalid geometry: {total_length} bytes in pieces of {piece_length} bytes")]
    BadGeometry {
        /// Sum of all file lengths.
        total_length: u64,
        /// The nominal piece length.
        piece_length: u32,
    },
    /// The number of expected piece hashes does not match the piece count.
    #[error("the torrent has {pieces} pieces but {hashes} piece hashes")]
    HashCount {
        /// Piece count implied by the file lengths and the piece length.
        pieces: u32,
        /// Number of hashes supplied.
        hashes: usize,
    },
    /// A symbolic link was found below the download folder where a torrent file or one of its
    /// directories should be; Shoal never follows links there.
    #[error("refusing to follow symbolic link {}", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Something that is not a regular file (or not a directory) sits where one is expected.
    #[error("{} is not a {expected}", path.display())]
    WrongKind {
        /// The offending path.
        path: PathBuf,
        /// "regular file" or "directory".
        expected: &'static str,
    },
    /// An existing file is longer than the torrent says; Shoal does not truncate user data.
    #[error("file {} is {actual} bytes but the torrent says {expected}", path.display())]
    FileTooLong {
        /// The file.
        path: PathBuf,
        /// Its length on disk.
        actual: u64,
        /// The length the torrent gives it.
        expected: u64,
    },
    /// A file is missing or shorter than the torrent says: at a read-only open, or when
    /// reading bytes of a file that no write has created yet.
    #[error("file {} is missing or shorter than {expected} bytes", path.display())]
    FileMissing {
        /// The file.
        path: PathBuf,
        /// The length the torrent gives it.
        expected: u64,
    },
    /// A file ended before the bytes the torrent places in it (changed behind Shoal's back).
    #[error("file {} ends before offset {offset}; was it truncated?", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// File offset one past the last byte Shoal tried to read.
        offset: u64,
    },
    /// A block or byte range does not lie inside its piece.
    #[error("range {begin}+{length} is outside piece {piece}")]
    OutOfRange {
        /// The piece index.
        piece: u32,
        /// Offset inside the piece.
        begin: u32,
        /// Number of bytes.
        length: u64,
    },
    /// The data handed to a write does not have the block's length.
    #[error("block of {expected} bytes given {actual} bytes of data")]
    DataLength {
        /// The block length.
        expected: u32,
        /// The length of the data.
        actual: usize,
    },
    /// A write was attempted on storage opened read-only.
    #[error("storage is open read-only")]
    ReadOnly,
    /// The verified-piece list handed to a resume save has the wrong length.
    #[error("resume data for {actual} pieces, the torrent has {expected}")]
    ResumeLength {
        /// The torrent's piece count.
        expected: u32,
        /// The length given.
        actual: usize,
    },
    /// A torrent id for the default resume path is not 40 or 64 hex digits.
    #[error("torrent id {0:?} is not 40 or 64 hex digits")]
    BadId(String),
    /// The path given to `shoal create` holds no bytes to share.
    #[error("nothing to share in {}", path.display())]
    NothingToShare {
        /// The scanned path.
        path: PathBuf,
    },
    /// A scanned file or directory name is not valid UTF-8, which torrents cannot carry.
    #[error("{} has a name that is not valid UTF-8", path.display())]
    NonUtf8Name {
        /// The offending path.
        path: PathBuf,
    },
}

impl StorageError {
    /// Wraps an I/O error with the operation and path.
    pub(crate) fn io(op: IoOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io { op, path: path.into(), source }
    }
}
