//! Replicated records as bytes: bincode with an explicit size limit, the whole input consumed,
//! and timestamps as seconds and nanoseconds checked on the way in.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest encoded record accepted from a peer (the stores bound records far below this).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

type Codec = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_RECORD_BYTES>,
>;

fn codec() -> Codec {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, codec()).map_err(|error| error.to_string())
}

/// Decodes one `what` (for the error message); the whole input must be that value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(format!(
            "{what} of {} bytes exceeds the limit of {MAX_RECORD_BYTES}",
            bytes.len()
        ));
    }
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(bytes, codec())
        .map_err(|error| format!("malformed {what}: {error}"))?;
    if read != bytes.len() {
        return Err(format!(
            "{} trailing bytes after a {what}",
            bytes.len() - read
        ));
    }
    Ok(value)
}

/// Use as `#[serde(with = "super::wire::time")]` on a `jiff::Timestamp` field.
pub mod time {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        (at.as_second(), at.subsec_nanosecond()).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let (seconds, nanos) = <(i64, i32)>::deserialize(deserializer)?;
        Timestamp::new(seconds, nanos).map_err(|error| {
            serde::de::Error::custom(format!("invalid timestamp {seconds}.{nanos}: {error}"))
        })
    }
}
