//! gzip and zstd streams, behind the `compress` feature (which the `papy`
//! binary enables; a library built without it builds neither codec). The
//! rest of the engine sees the same names either way: without the feature
//! the compressed variants do not exist, and opening or creating such a
//! stream returns an error saying which feature the file's extension needs.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

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
    /// Its name in messages: `plain`, `gzip`, `zstd`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::None => "plain",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The compression `path`'s extension asks for.
    pub fn of(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// Why a compressed stream cannot be read or written in this build.
#[cfg(not(feature = "compress"))]
fn missing(c: Compression) -> io::Error {
    let what = match c {
        Compression::Gzip => "gzip (.gz)",
        _ => "zstd (.zst)",
    };
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "{what} files need papy built with the `compress` feature (the papy binary has it)"
        ),
    )
}

/// `r` decompressed as `c` says, buffered: gzip members and zstd frames
/// written one after the other are read as one stream.
pub(crate) fn decoder(
    c: Compression,
    r: impl Read + Send + 'static,
) -> io::Result<Box<dyn BufRead + Send>> {
    Ok(match c {
        Compression::None => Box::new(BufReader::with_capacity(1 << 16, r)),
        #[cfg(feature = "compress")]
        Compression::Gzip => Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            BufReader::new(r),
        ))),
        #[cfg(feature = "compress")]
        Compression::Zstd => Box::new(BufReader::new(zstd::Decoder::new(r)?)),
        #[cfg(not(feature = "compress"))]
        other => return Err(missing(other)),
    })
}

/// A stream written into `W`, compressed as its [`Compression`] says.
pub(crate) enum Encoder<W: Write> {
    /// As it is.
    Plain(W),
    /// A gzip member.
    #[cfg(feature = "compress")]
    Gzip(flate2::write::GzEncoder<W>),
    /// A zstd frame.
    #[cfg(feature = "compress")]
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// An encoder of `c` into `w`.
    pub(crate) fn new(c: Compression, w: W) -> io::Result<Encoder<W>> {
        Ok(match c {
            Compression::None => Encoder::Plain(w),
            #[cfg(feature = "compress")]
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::default(),
            )),
            #[cfg(feature = "compress")]
            Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(w, 3)?),
            #[cfg(not(feature = "compress"))]
            other => return Err(missing(other)),
        })
    }

    /// Completes the stream (a compressed one's trailer) and gives back `W`.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            #[cfg(feature = "compress")]
            Encoder::Gzip(e) => e.finish(),
            #[cfg(feature = "compress")]
            Encoder::Zstd(e) => e.finish(),
        }
    }

    /// Whether the stream is compressed.
    pub(crate) fn is_compressed(&self) -> bool {
        !matches!(self, Encoder::Plain(_))
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            #[cfg(feature = "compress")]
            Encoder::Gzip(e) => e.write(buf),
            #[cfg(feature = "compress")]
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            #[cfg(feature = "compress")]
            Encoder::Gzip(e) => e.flush(),
            #[cfg(feature = "compress")]
            Encoder::Zstd(e) => e.flush(),
        }
    }
}
