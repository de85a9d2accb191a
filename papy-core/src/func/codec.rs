//! Opening stream files by extension: `.gz` is gzip, `.zst` is zstd,
//! anything else is plain; `-` is stdin (reading) or stdout (writing).
//! gzip and zstd need the `compress` feature; without it, opening or
//! creating such a file is an error naming the feature.
//!
#![cfg_attr(feature = "compress", doc = "```")]
#![cfg_attr(not(feature = "compress"), doc = "```ignore")]
//! use std::io::{BufRead, Write};
//! use papy_core::func::codec::{self, Compression};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("lines.txt.gz");
//! assert_eq!(Compression::of(&path), Compression::Gzip);
//! let mut w = codec::create(&path, false).unwrap();
//! w.write_all(b"a\nb\n").unwrap();
//! w.finish().unwrap();
//! let lines: Vec<String> = codec::open(&path).unwrap().lines().map(|l| l.unwrap()).collect();
//! assert_eq!(lines, ["a", "b"]);
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub use super::compress::Compression;
use super::compress::{self, Encoder};

fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Opens `path` for reading, decompressing by extension (`-` = stdin).
///
/// # Errors
/// The file cannot be opened, or a zstd decoder cannot be set up; the
/// message names the path.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    if is_stdio(path) {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let f = Counted {
        inner: File::open(path).map_err(|e| named(path, "cannot open", e))?,
        read: counter(path),
    };
    let c = Compression::of(path);
    compress::decoder(c, f).map_err(|e| named(path, &format!("cannot read {} from", c.name()), e))
}

/// The bytes read so far from the file at `path` through [`open`] by this
/// process (of the file as stored: compressed bytes for `.gz` and `.zst`),
/// for progress against the file's size; `None` for a file not opened.
///
/// ```
/// use std::io::BufRead;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("in.txt");
/// std::fs::write(&path, "a\nb\n").unwrap();
/// assert_eq!(papy_core::func::codec::bytes_read(&path), None);
/// let n = papy_core::func::codec::open(&path).unwrap().lines().count();
/// assert_eq!(n, 2);
/// assert_eq!(papy_core::func::codec::bytes_read(&path), Some(4));
/// ```
pub fn bytes_read(path: &Path) -> Option<u64> {
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let read = counters().lock().unwrap_or_else(PoisonError::into_inner);
    read.iter()
        .find(|(p, _)| *p == key)
        .map(|(_, n)| n.load(Ordering::Relaxed))
}

type Counters = Mutex<Vec<(PathBuf, Arc<AtomicU64>)>>;

fn counters() -> &'static Counters {
    static READ: std::sync::OnceLock<Counters> = std::sync::OnceLock::new();
    READ.get_or_init(Counters::default)
}

/// The counter of `path`'s bytes read, new at each opening.
fn counter(path: &Path) -> Arc<AtomicU64> {
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let n = Arc::new(AtomicU64::new(0));
    let mut read = counters().lock().unwrap_or_else(PoisonError::into_inner);
    read.retain(|(p, _)| *p != key);
    read.push((key, n.clone()));
    n
}

/// A file that counts the bytes read from it (one relaxed add per read
/// call: per 64 KiB buffer fill).
struct Counted {
    inner: File,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A stream being written (one writer per file; several processes
/// appending to one file go through [`write`](super::write) instead). Call
/// [`finish`](Self::finish) to complete it and see errors; dropping it
/// completes it too, logging errors.
pub struct StreamFile {
    inner: Option<Encoder<BufWriter<Box<dyn Write + Send>>>>,
}

opaque_debug!(StreamFile);

/// Creates (or, with `append`, appends to) `path`, compressing by
/// extension (`-` = stdout). Appending to a compressed file adds a new
/// gzip member or zstd frame, which readers take as one stream.
///
/// # Errors
/// The file cannot be created; the message names the path.
pub fn create(path: &Path, append: bool) -> io::Result<StreamFile> {
    let out: Box<dyn Write + Send> = if is_stdio(path) {
        Box::new(io::stdout())
    } else {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| named(path, "cannot create", e))?;
        Box::new(f)
    };
    let c = Compression::of(path);
    let inner = Encoder::new(c, BufWriter::new(out))
        .map_err(|e| named(path, &format!("cannot write {} to", c.name()), e))?;
    Ok(StreamFile { inner: Some(inner) })
}

impl StreamFile {
    /// Completes the stream (compressed trailers) and flushes it.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(mut self) -> io::Result<()> {
        self.complete()
    }

    fn complete(&mut self) -> io::Result<()> {
        match self.inner.take() {
            None => Ok(()),
            Some(e) => e.finish()?.flush(),
        }
    }

    /// Whether the stream is compressed (a flush does not make a
    /// compressed file readable to its end; [`finish`](Self::finish) does).
    pub fn is_compressed(&self) -> bool {
        self.inner.as_ref().is_some_and(Encoder::is_compressed)
    }

    fn writer(&mut self) -> io::Result<&mut dyn Write> {
        match &mut self.inner {
            Some(e) => Ok(e),
            None => Err(io::Error::other("stream already finished")),
        }
    }
}

impl Drop for StreamFile {
    fn drop(&mut self) {
        if let Err(e) = self.complete() {
            tracing::error!("completing a stream: {e}");
        }
    }
}

impl Write for StreamFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }
}

/// An I/O error whose message names the file.
pub(crate) fn named(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}
