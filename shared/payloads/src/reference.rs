//! What a stored value looks like once its payload lives in the blob store, and the escape
//! that keeps a caller's value that merely looks like a reference from being read as one.
//!
//! Stored forms (only a top-level object with the key `$wfPayload` is special):
//! - anything else: the value itself, unchanged;
//! - `{"$wfPayload": {"sha256": "<64 hex>", "bytes": n}}`: a reference to the blob
//!   `<runId>/<sha256>` of the run the item belongs to (a reference can only ever name a
//!   blob of its own run: the run id is never taken from the stored value);
//! - `{"$wfPayload": {"literal": v}}`: the caller's value `v`, itself an object with the
//!   key `$wfPayload`.
//!
//! Blob bytes are the compact JSON of the value; `sha256` is their digest, so the same
//! value always gets the same key and a blob read back is checked against it.

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// The reserved key of references and escapes.
pub(crate) const MARKER: &str = "$wfPayload";

/// The lowercase hex SHA-256 of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

fn is_digest(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The reference to blob `digest` of `bytes` bytes.
pub(crate) fn reference(digest: &str, bytes: u64) -> Value {
    json!({ MARKER: { "sha256": digest, "bytes": bytes } })
}

/// Whether `value` must be escaped to be stored as itself.
pub(crate) fn needs_escape(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|map| map.contains_key(MARKER))
}

/// `value` escaped (see [`needs_escape`]).
pub(crate) fn escape(value: &Value) -> Value {
    json!({ MARKER: { "literal": value } })
}

/// A stored value, read.
#[derive(Debug, PartialEq)]
pub(crate) enum Stored {
    /// The value itself (unescaped).
    Inline(Value),
    /// A reference to the blob with this digest.
    Blob {
        /// The blob's SHA-256, lowercase hex.
        digest: String,
        /// Its size.
        bytes: u64,
    },
}

/// Reads a stored value. A marker object that is neither a well-formed reference nor an
/// escape (written before references existed) is returned as it is.
pub(crate) fn decode(stored: Value) -> Stored {
    let Value::Object(mut map) = stored else {
        return Stored::Inline(stored);
    };
    if map.len() == 1
        && let Some(Value::Object(inner)) = map.get_mut(MARKER)
    {
        if let Some(Value::String(sha)) = inner.get("sha256")
            && is_digest(sha)
            && let Some(bytes) = inner.get("bytes").and_then(Value::as_u64)
            && inner.len() == 2
        {
            return Stored::Blob {
                digest: sha.clone(),
                bytes,
            };
        }
        if inner.len() == 1
            && let Some(literal) = inner.remove("literal")
        {
            return Stored::Inline(literal);
        }
    }
    Stored::Inline(Value::Object(map))
}

/// The digest a stored value references, if it is a reference.
pub(crate) fn referenced_digest(stored: &Value) -> Option<String> {
    let inner: &Map<String, Value> = stored.as_object()?.get(MARKER)?.as_object()?;
    let sha = inner.get("sha256")?.as_str()?;
    is_digest(sha).then(|| sha.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_escapes_and_plain_values_decode_to_what_was_meant() {
        let sha = digest(b"\"x\"");
        assert_eq!(sha.len(), 64);
        let cases = [
            (json!({ "a": 1 }), Stored::Inline(json!({ "a": 1 }))),
            (json!("text"), Stored::Inline(json!("text"))),
            (
                reference(&sha, 3),
                Stored::Blob {
                    digest: sha.clone(),
                    bytes: 3,
                },
            ),
            (
                escape(&json!({ MARKER: { "sha256": sha, "bytes": 3 } })),
                Stored::Inline(json!({ MARKER: { "sha256": sha, "bytes": 3 } })),
            ),
            (
                escape(&json!({ MARKER: 1, "other": 2 })),
                Stored::Inline(json!({ MARKER: 1, "other": 2 })),
            ),
            // Not well formed: returned as stored.
            (
                json!({ MARKER: { "sha256": "../../etc", "bytes": 3 } }),
                Stored::Inline(json!({ MARKER: { "sha256": "../../etc", "bytes": 3 } })),
            ),
            (
                json!({ MARKER: { "sha256": sha, "bytes": 3 }, "x": 1 }),
                Stored::Inline(json!({ MARKER: { "sha256": sha, "bytes": 3 }, "x": 1 })),
            ),
        ];
        for (stored, expected) in cases {
            assert_eq!(decode(stored.clone()), expected, "{stored}");
        }
        assert_eq!(referenced_digest(&reference(&sha, 3)), Some(sha));
        assert_eq!(referenced_digest(&json!({ "a": 1 })), None);
    }

    #[test]
    fn only_objects_with_the_marker_need_escaping() {
        assert!(needs_escape(&json!({ MARKER: null })));
        assert!(!needs_escape(&json!({ "a": { MARKER: 1 } })));
        assert!(!needs_escape(&json!([{ MARKER: 1 }])));
    }
}
