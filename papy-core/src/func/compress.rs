//! gzip and zstd streams, behind the `compress` feature (which the `papy`
//! binary enables; a library built without it builds neither codec). The
//! rest of the engine sees the same names either way: without the feature
//! the stream types cannot be built, and each constructor returns an error
//! saying which feature the file's extension needs.

use std::io::{self, Read, Write};

#[cfg(feature = "compress")]
mod imp {
    use super::*;

    /// A gzip reader taking concatenated members as one stream.
    pub(crate) type GzipReader<R> = flate2::read::MultiGzDecoder<R>;
    /// A gzip writer.
    pub(crate) type GzipWriter<W> = flate2::write::GzEncoder<W>;
    /// A zstd reader taking concatenated frames as one stream.
    pub(crate) type ZstdReader<R> = zstd::Decoder<'static, io::BufReader<R>>;
    /// A zstd writer.
    pub(crate) type ZstdWriter<W> = zstd::Encoder<'static, W>;

    pub(crate) fn gzip_reader<R: Read>(r: R) -> io::Result<GzipReader<R>> {
        Ok(flate2::read::MultiGzDecoder::new(r))
    }

    pub(crate) fn gzip_writer<W: Write>(w: W) -> io::Result<GzipWriter<W>> {
        Ok(flate2::write::GzEncoder::new(
            w,
            flate2::Compression::default(),
        ))
    }

    pub(crate) fn gzip_finish<W: Write>(w: GzipWriter<W>) -> io::Result<W> {
        w.finish()
    }

    pub(crate) fn zstd_reader<R: Read>(r: R) -> io::Result<ZstdReader<R>> {
        zstd::Decoder::new(r)
    }

    pub(crate) fn zstd_writer<W: Write>(w: W) -> io::Result<ZstdWriter<W>> {
        zstd::Encoder::new(w, 3)
    }

    pub(crate) fn zstd_finish<W: Write>(w: ZstdWriter<W>) -> io::Result<W> {
        w.finish()
    }
}

#[cfg(not(feature = "compress"))]
mod imp {
    use super::*;
    use std::convert::Infallible;
    use std::marker::PhantomData;

    /// A stream that cannot exist: this build has no codecs.
    pub(crate) struct Unavailable<T>(Infallible, PhantomData<T>);

    impl<T> Read for Unavailable<T> {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            match self.0 {}
        }
    }

    impl<T> Write for Unavailable<T> {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            match self.0 {}
        }
        fn flush(&mut self) -> io::Result<()> {
            match self.0 {}
        }
    }

    pub(crate) type GzipReader<R> = Unavailable<R>;
    pub(crate) type GzipWriter<W> = Unavailable<W>;
    pub(crate) type ZstdReader<R> = Unavailable<R>;
    pub(crate) type ZstdWriter<W> = Unavailable<W>;

    fn missing(what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{what} files need papy built with the `compress` feature (the papy binary has it)"
            ),
        )
    }

    pub(crate) fn gzip_reader<R: Read>(_: R) -> io::Result<GzipReader<R>> {
        Err(missing("gzip (.gz)"))
    }

    pub(crate) fn gzip_writer<W: Write>(_: W) -> io::Result<GzipWriter<W>> {
        Err(missing("gzip (.gz)"))
    }

    pub(crate) fn gzip_finish<W: Write>(w: GzipWriter<W>) -> io::Result<W> {
        match w.0 {}
    }

    pub(crate) fn zstd_reader<R: Read>(_: R) -> io::Result<ZstdReader<R>> {
        Err(missing("zstd (.zst)"))
    }

    pub(crate) fn zstd_writer<W: Write>(_: W) -> io::Result<ZstdWriter<W>> {
        Err(missing("zstd (.zst)"))
    }

    pub(crate) fn zstd_finish<W: Write>(w: ZstdWriter<W>) -> io::Result<W> {
        match w.0 {}
    }
}

pub(crate) use imp::*;
