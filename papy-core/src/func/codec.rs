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
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use super::compress;

/// The compression of a stream file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip (`.gz`); concatenated members are read as one stream.
    Gzip,
    /// Zstandard (`.zst`); concatenated frames are read as one stream.
    Zstd,
}

impl Compression {
    /// The compression `path`'s extension asks for.
    pub fn of(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

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
    let f = File::open(path).map_err(|e| named(path, "cannot open", e))?;
    Ok(match Compression::of(path) {
        Compression::None => Box::new(BufReader::with_capacity(1 << 16, f)),
        Compression::Gzip => Box::new(BufReader::new(
            compress::gzip_reader(BufReader::new(f))
                .map_err(|e| named(path, "cannot read gzip from", e))?,
        )),
        Compression::Zstd => Box::new(BufReader::new(
            compress::zstd_reader(f).map_err(|e| named(path, "cannot read zstd from", e))?,
        )),
    })
}

/// A stream being written (one writer per file; several processes
/// appending to one file go through [`write`](super::write) instead). Call
/// [`finish`](Self::finish) to complete it and see errors; dropping it
/// completes it too, logging errors.
pub struct StreamFile {
    inner: Option<Inner>,
}

enum Inner {
    Plain(BufWriter<Box<dyn Write + Send>>),
    Gzip(compress::GzipWriter<BufWriter<File>>),
    Zstd(compress::ZstdWriter<BufWriter<File>>),
}

/// Creates (or, with `append`, appends to) `path`, compressing by
/// extension (`-` = stdout). Appending to a compressed file adds a new
/// gzip member or zstd frame, which readers take as one stream.
///
/// # Errors
/// The file cannot be created; the message names the path.
pub fn create(path: &Path, append: bool) -> io::Result<StreamFile> {
    if is_stdio(path) {
        let out: Box<dyn Write + Send> = Box::new(io::stdout());
        return Ok(StreamFile {
            inner: Some(Inner::Plain(BufWriter::new(out))),
        });
    }
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|e| named(path, "cannot create", e))?;
    let inner = match Compression::of(path) {
        Compression::None => Inner::Plain(BufWriter::new(Box::new(f))),
        Compression::Gzip => Inner::Gzip(
            compress::gzip_writer(BufWriter::new(f))
                .map_err(|e| named(path, "cannot write gzip to", e))?,
        ),
        Compression::Zstd => Inner::Zstd(
            compress::zstd_writer(BufWriter::new(f))
                .map_err(|e| named(path, "cannot write zstd to", e))?,
        ),
    };
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
            Some(Inner::Plain(mut w)) => w.flush(),
            Some(Inner::Gzip(w)) => compress::gzip_finish(w)?.flush(),
            Some(Inner::Zstd(w)) => compress::zstd_finish(w)?.flush(),
        }
    }

    /// Whether the stream is compressed (a flush does not make a
    /// compressed file readable to its end; [`finish`](Self::finish) does).
    pub fn is_compressed(&self) -> bool {
        !matches!(self.inner, Some(Inner::Plain(_)) | None)
    }

    fn writer(&mut self) -> io::Result<&mut dyn Write> {
        match &mut self.inner {
            Some(Inner::Plain(w)) => Ok(w),
            Some(Inner::Gzip(w)) => Ok(w),
            Some(Inner::Zstd(w)) => Ok(w),
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
