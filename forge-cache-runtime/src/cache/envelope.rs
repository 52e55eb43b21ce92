//! The stored form of a cached value. A plain function stores the value's
//! JSON, readable by any service. With `early_refresh` or `tags`, the value
//! is wrapped: `{"v": <value>, "d": <ms the function took>, "t": [<tag
//! versions>]}`, `d` and `t` only when used.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The wrapped form, to write.
#[derive(Serialize)]
pub(crate) struct EnvelopeRef<'a, S> {
    pub(crate) v: &'a S,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) d: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(crate) t: &'a [String],
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

/// Decodes a stored value, wrapped or not.
pub(crate) fn decode_stored<S: DeserializeOwned>(
    bytes: &[u8],
    wrapped: bool,
) -> crate::error::Result<Decoded<S>> {
    if wrapped {
        crate::codec::decode::<Envelope<S>>(bytes).map(|e| Decoded {
            value: e.v,
            took_ms: e.d,
            tags: e.t,
        })
    } else {
        crate::codec::decode::<S>(bytes).map(|value| Decoded {
            value,
            took_ms: 0,
            tags: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips() {
        let tags = ["17".to_owned()];
        let bytes = serde_json::to_vec(&EnvelopeRef {
            v: &vec![1, 2],
            d: Some(7),
            t: &tags,
        })
        .unwrap();
        assert_eq!(bytes, br#"{"v":[1,2],"d":7,"t":["17"]}"#);
        let e = decode_stored::<Vec<u8>>(&bytes, true).unwrap();
        assert_eq!((e.value, e.took_ms, e.tags), (vec![1, 2], 7, tags.to_vec()));
    }

    #[test]
    fn the_early_refresh_form_is_unchanged() {
        let bytes = serde_json::to_vec(&EnvelopeRef {
            v: &1,
            d: Some(7),
            t: &[],
        })
        .unwrap();
        assert_eq!(bytes, br#"{"v":1,"d":7}"#);
    }
}
