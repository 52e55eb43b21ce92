//! The stored form of a cached value. A plain function stores the value's
//! JSON, readable by any service. With `early_refresh` or `tags`, the value
//! is wrapped: `{"v": <value>, "d": <ms the function took>, "t": [<tag
//! versions>]}`, `d` and `t` only when used; in a positional format
//! (postcard), the tuple `(value, d, t)`. The bytes are then written in the
//! function's format (see `format`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::format::Codec;

/// The wrapped form, to write.
#[derive(Serialize)]
struct EnvelopeRef<'a, S> {
    v: &'a S,
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    t: &'a [String],
}

#[derive(Deserialize)]
struct Envelope<S> {
    v: S,
    #[serde(default)]
    d: u64,
    #[serde(default)]
    t: Vec<String>,
}

/// A decoded stored value.
pub(crate) struct Decoded<S> {
    pub(crate) value: S,
    /// Milliseconds its computation took (`early_refresh`), else 0.
    pub(crate) took_ms: u64,
    /// The versions of its tags when it was computed (`tags`), else empty.
    pub(crate) tags: Vec<String>,
}

/// Encodes a value to store, wrapped (with `took_ms` and `tags`) or not.
pub(crate) fn encode_stored<S: Serialize>(
    codec: &Codec,
    wrapped: bool,
    value: &S,
    took_ms: Option<u64>,
    tags: &[String],
) -> Result<Vec<u8>> {
    if !wrapped {
        codec.encode(value)
    } else if codec.format.named() {
        codec.encode(&EnvelopeRef {
            v: value,
            d: took_ms,
            t: tags,
        })
    } else {
        codec.encode(&(value, took_ms.unwrap_or(0), tags))
    }
}

/// Decodes a stored value, wrapped or not.
pub(crate) fn decode_stored<S: DeserializeOwned>(
    codec: &Codec,
    bytes: &[u8],
    wrapped: bool,
) -> Result<Decoded<S>> {
    let (value, took_ms, tags) = if !wrapped {
        (codec.decode::<S>(bytes)?, 0, Vec::new())
    } else if codec.format.named() {
        let e = codec.decode::<Envelope<S>>(bytes)?;
        (e.v, e.d, e.t)
    } else {
        codec.decode::<(S, u64, Vec<String>)>(bytes)?
    };
    Ok(Decoded {
        value,
        took_ms,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;

    fn json() -> Codec {
        Codec {
            format: Format::Json,
            compress_above: None,
            max_bytes: 1 << 20,
        }
    }

    #[test]
    fn envelope_round_trips() {
        let tags = ["17".to_owned()];
        let bytes = encode_stored(&json(), true, &vec![1, 2], Some(7), &tags).unwrap();
        assert_eq!(bytes, br#"{"v":[1,2],"d":7,"t":["17"]}"#);
        let e = decode_stored::<Vec<u8>>(&json(), &bytes, true).unwrap();
        assert_eq!((e.value, e.took_ms, e.tags), (vec![1, 2], 7, tags.to_vec()));
    }

    #[test]
    fn the_early_refresh_form_is_unchanged() {
        let bytes = encode_stored(&json(), true, &1, Some(7), &[]).unwrap();
        assert_eq!(bytes, br#"{"v":1,"d":7}"#);
    }

    #[cfg(feature = "postcard")]
    #[test]
    fn a_positional_format_wraps_in_a_tuple() {
        let c = Codec {
            format: Format::Postcard,
            ..json()
        };
        let tags = ["a".to_owned()];
        let bytes = encode_stored(&c, true, &5u32, None, &tags).unwrap();
        let e = decode_stored::<u32>(&c, &bytes, true).unwrap();
        assert_eq!((e.value, e.took_ms, e.tags), (5, 0, tags.to_vec()));
    }
}
