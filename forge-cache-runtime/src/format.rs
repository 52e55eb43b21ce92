//! The formats of cached values, and their compression.
//!
//! JSON is the default, and is stored as plain JSON so that services in
//! any language can read it. The other formats, and compressed values of
//! any format, start with a three-byte header: `0xFF`, the format (`j`
//! JSON, `m` MessagePack, `p` postcard) and the compression (`-` none, `z`
//! zstd). `0xFF` never starts JSON (nor UTF-8), so a reader configured for
//! another format always tells the difference, and takes the value as a
//! miss ([`Error::OtherFormat`]) instead of decoding garbage.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// How cached values are encoded: `format = "..."` on `#[cache_result]`,
/// or `REDIS_CACHE_FORMAT` for every function without one.
///
/// ```
/// use forge_cache_runtime::Format;
/// assert_eq!(Format::default(), Format::Json);
/// assert_eq!(Format::Json.name(), "json");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// JSON (serde_json): readable by any service. The default.
    #[default]
    Json,
    /// MessagePack with field names (rmp-serde): smaller and faster than
    /// JSON, still self-describing, with libraries in most languages.
    /// Needs the `msgpack` feature.
    MessagePack,
    /// postcard: the most compact and fastest to decode, Rust only. Not
    /// self-describing: types using `#[serde(flatten)]`, untagged enums,
    /// `skip_serializing_if` or `serde_json::Value` do not decode (every
    /// call is then a miss, logged). Needs the `postcard` feature.
    Postcard,
}

impl Format {
    /// The name used by `format = "..."` and `REDIS_CACHE_FORMAT`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::MessagePack => "msgpack",
            Format::Postcard => "postcard",
        }
    }

    /// The format named `name`, if this build supports it.
    pub(crate) fn parse(name: &str) -> Option<Format> {
        [Format::Json, Format::MessagePack, Format::Postcard]
            .into_iter()
            .find(|f| f.name() == name && f.available())
    }

    /// Whether this build has the format's feature.
    pub(crate) fn available(self) -> bool {
        match self {
            Format::Json => true,
            Format::MessagePack => cfg!(feature = "msgpack"),
            Format::Postcard => cfg!(feature = "postcard"),
        }
    }

    /// Whether values are self-describing maps (so optional fields may be
    /// left out), as opposed to positional.
    pub(crate) fn named(self) -> bool {
        !matches!(self, Format::Postcard)
    }

    fn byte(self) -> u8 {
        match self {
            Format::Json => b'j',
            Format::MessagePack => b'm',
            Format::Postcard => b'p',
        }
    }
}

/// First byte of a value with a header.
const MAGIC: u8 = 0xFF;
const PLAIN: u8 = b'-';
const ZSTD: u8 = b'z';

/// How values are written: the format, and the size above which they are
/// compressed (`REDIS_COMPRESS_ABOVE`, with the `zstd` feature).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Codec {
    pub(crate) format: Format,
    pub(crate) compress_above: Option<usize>,
    /// Largest value written or decompressed.
    pub(crate) max_bytes: usize,
}

impl Codec {
    /// Encodes `value`, with a header unless it is plain JSON.
    pub(crate) fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let body = match self.format {
            Format::Json => serde_json::to_vec(value).map_err(Error::Encode)?,
            other => with_header(other, PLAIN, encode_binary(other, value)?),
        };
        let body = match self.compress_above {
            Some(above) if body.len() > above => compress(self.format, &body)?,
            _ => body,
        };
        if body.len() > self.max_bytes {
            return Err(Error::TooLarge {
                size: body.len(),
                limit: self.max_bytes,
            });
        }
        Ok(body)
    }

    /// Decodes a value written by [`encode`](Self::encode) in this format
    /// (compressed or not).
    pub(crate) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let other = || Error::OtherFormat {
            expected: self.format.name(),
        };
        let Some((&MAGIC, rest)) = bytes.split_first() else {
            return match self.format {
                Format::Json => serde_json::from_slice(bytes).map_err(Error::Decode),
                _ => Err(other()),
            };
        };
        let [format, compression, payload @ ..] = rest else {
            return Err(other());
        };
        if *format != self.format.byte() {
            return Err(other());
        }
        match *compression {
            PLAIN => decode_payload(self.format, payload),
            ZSTD => decode_payload(
                self.format,
                &decompress(self.format, payload, self.max_bytes)?,
            ),
            _ => Err(other()),
        }
    }
}

/// A value as `#[cache_result]` stores it in `format`, compressed above
/// `compress_above` bytes: for the benchmark suite.
#[doc(hidden)]
pub fn encode_as<T: Serialize + ?Sized>(
    format: Format,
    compress_above: Option<usize>,
    value: &T,
) -> Result<Vec<u8>> {
    Codec {
        format,
        compress_above,
        max_bytes: usize::MAX,
    }
    .encode(value)
}

/// Decodes what [`encode_as`] wrote: for the benchmark suite.
#[doc(hidden)]
pub fn decode_as<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T> {
    Codec {
        format,
        compress_above: None,
        max_bytes: 64 << 20,
    }
    .decode(bytes)
}

fn with_header(format: Format, compression: u8, payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.extend_from_slice(&[MAGIC, format.byte(), compression]);
    out.extend_from_slice(&payload);
    out
}

/// The payload of a format (plain JSON included, after a header).
fn decode_payload<T: DeserializeOwned>(format: Format, payload: &[u8]) -> Result<T> {
    match format {
        Format::Json => serde_json::from_slice(payload).map_err(Error::Decode),
        other => decode_binary(other, payload),
    }
}

fn codec_error(
    op: &'static str,
    format: Format,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    move |source| Error::Codec {
        op,
        format: format.name(),
        source,
    }
}

#[allow(unused_variables)]
fn encode_binary<T: Serialize + ?Sized>(format: Format, value: &T) -> Result<Vec<u8>> {
    let err = codec_error("encode", format);
    match format {
        #[cfg(feature = "msgpack")]
        Format::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| err(e.into())),
        #[cfg(feature = "postcard")]
        Format::Postcard => postcard::to_stdvec(value).map_err(|e| err(e.into())),
        _ => Err(err(unavailable(format))),
    }
}

#[allow(unused_variables)]
fn decode_binary<T: DeserializeOwned>(format: Format, payload: &[u8]) -> Result<T> {
    let err = codec_error("decode", format);
    match format {
        #[cfg(feature = "msgpack")]
        Format::MessagePack => rmp_serde::from_slice(payload).map_err(|e| err(e.into())),
        #[cfg(feature = "postcard")]
        Format::Postcard => postcard::from_bytes(payload).map_err(|e| err(e.into())),
        _ => Err(err(unavailable(format))),
    }
}

fn unavailable(format: Format) -> Box<dyn std::error::Error + Send + Sync> {
    format!(
        "this build lacks the `{}` feature of forge-cache",
        format.name()
    )
    .into()
}

/// `body` (a value as [`Codec::encode`] made it) compressed, with a header.
fn compress(format: Format, body: &[u8]) -> Result<Vec<u8>> {
    // The payload of a value with a header; all of plain JSON.
    let payload = match body.first() {
        Some(&MAGIC) => &body[3..],
        _ => body,
    };
    #[cfg(feature = "zstd")]
    {
        let z =
            zstd_codec::compress(payload).map_err(|e| codec_error("compress", format)(e.into()))?;
        Ok(with_header(format, ZSTD, z))
    }
    #[cfg(not(feature = "zstd"))]
    {
        let _ = payload;
        Err(codec_error("compress", format)(
            "this build lacks the `zstd` feature of forge-cache".into(),
        ))
    }
}

/// The payload of a compressed value; never more than `max_bytes` (a
/// value that would inflate past it is an error, not an allocation).
#[allow(unused_variables)]
fn decompress(format: Format, payload: &[u8], max_bytes: usize) -> Result<Vec<u8>> {
    #[cfg(feature = "zstd")]
    {
        zstd_codec::decompress(payload, max_bytes)
            .map_err(|e| codec_error("decompress", format)(e.into()))
    }
    #[cfg(not(feature = "zstd"))]
    {
        Err(Error::OtherFormat {
            expected: "uncompressed (this build lacks the `zstd` feature)",
        })
    }
}

/// zstd with one compression and one decompression context per thread:
/// creating a context costs more than compressing a small value.
#[cfg(feature = "zstd")]
mod zstd_codec {
    use std::cell::RefCell;
    use std::io;

    use zstd::bulk::{Compressor, Decompressor};

    /// Level 3, the library's default: fast, and most of the gain.
    const LEVEL: i32 = 3;

    thread_local! {
        static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
        static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
    }

    pub(super) fn compress(payload: &[u8]) -> io::Result<Vec<u8>> {
        COMPRESSOR.with(|slot| {
            let mut slot = slot.borrow_mut();
            let c = match &mut *slot {
                Some(c) => c,
                None => slot.insert(Compressor::new(LEVEL)?),
            };
            // The frame records the content size, which `decompress` reads.
            c.compress(payload)
        })
    }

    /// Inflates to exactly the size the frame records, which must be at
    /// most `max_bytes`: memory is bounded by the value, not by the limit.
    pub(super) fn decompress(payload: &[u8], max_bytes: usize) -> io::Result<Vec<u8>> {
        let size = match zstd::zstd_safe::get_frame_content_size(payload) {
            Ok(Some(n)) => n,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a zstd frame with its content size",
                ));
            }
        };
        let size = usize::try_from(size)
            .ok()
            .filter(|n| *n <= max_bytes)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "inflates past the value limit")
            })?;
        DECOMPRESSOR.with(|slot| {
            let mut slot = slot.borrow_mut();
            let d = match &mut *slot {
                Some(d) => d,
                None => slot.insert(Decompressor::new()?),
            };
            d.decompress(payload, size)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(format: Format, compress_above: Option<usize>) -> Codec {
        Codec {
            format,
            compress_above,
            max_bytes: 1 << 20,
        }
    }

    #[test]
    fn json_stays_plain_json() {
        let bytes = codec(Format::Json, None).encode(&[1, 2]).unwrap();
        assert_eq!(bytes, b"[1,2]");
        assert_eq!(
            codec(Format::Json, None).decode::<Vec<u8>>(&bytes).unwrap(),
            vec![1, 2]
        );
    }

    #[test]
    fn a_reader_of_another_format_sees_a_miss_not_garbage() {
        let json = codec(Format::Json, None).encode(&7u32).unwrap();
        let tagged = with_header(Format::MessagePack, PLAIN, vec![7]);
        assert!(matches!(
            codec(Format::MessagePack, None).decode::<u32>(&json),
            Err(Error::OtherFormat { .. })
        ));
        assert!(codec(Format::Json, None).decode::<u32>(&tagged).is_err());
        assert!(matches!(
            codec(Format::Postcard, None).decode::<u32>(&tagged),
            Err(Error::OtherFormat { .. })
        ));
        // Truncated or unknown headers too.
        for bad in [&[MAGIC][..], &[MAGIC, b'm'], &[MAGIC, b'm', b'?', 1]] {
            assert!(codec(Format::MessagePack, None).decode::<u32>(bad).is_err());
        }
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_round_trips_with_a_header() {
        let c = codec(Format::MessagePack, None);
        let bytes = c.encode(&("a", 1u8)).unwrap();
        assert_eq!(&bytes[..3], &[MAGIC, b'm', PLAIN]);
        assert_eq!(
            c.decode::<(String, u8)>(&bytes).unwrap(),
            ("a".to_owned(), 1)
        );
    }

    #[cfg(feature = "postcard")]
    #[test]
    fn postcard_round_trips_with_a_header() {
        let c = codec(Format::Postcard, None);
        let bytes = c.encode(&vec![300u32, 1]).unwrap();
        assert_eq!(&bytes[..3], &[MAGIC, b'p', PLAIN]);
        assert_eq!(c.decode::<Vec<u32>>(&bytes).unwrap(), vec![300, 1]);
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn large_values_are_compressed_and_bounded_when_inflated() {
        let big = vec!["forge-cache"; 1000];
        for format in [Format::Json, Format::MessagePack, Format::Postcard]
            .into_iter()
            .filter(|f| f.available())
        {
            let c = codec(format, Some(256));
            let bytes = c.encode(&big).unwrap();
            assert_eq!(&bytes[..3], &[MAGIC, format.byte(), ZSTD]);
            assert!(bytes.len() < 500, "{format:?}: {}", bytes.len());
            assert_eq!(c.decode::<Vec<String>>(&bytes).unwrap().len(), 1000);
            // A reader allowing less than the inflated size refuses it.
            let small = Codec {
                max_bytes: 1000,
                ..c
            };
            assert!(small.decode::<Vec<String>>(&bytes).is_err());
            // An uncompressing reader of the same format takes it as a miss too.
            let small_value = c.encode(&1u8).unwrap();
            assert_eq!(c.decode::<u8>(&small_value).unwrap(), 1);
        }
    }
}
