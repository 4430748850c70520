//! Listing cursors: an opaque, integrity-protected position bound to the query that
//! produced it.
//!
//! A cursor is `base64url(version ‖ tag ‖ sort key)`, where `tag` is the first 16 bytes of
//! HMAC-SHA256 under the store's [`CursorKey`] over the version, the query's filters and the
//! sort key. So:
//! 1. A cursor resumes exactly after the run whose sort key it carries (sort keys are unique).
//! 2. A cursor with any byte changed, cut short, minted under another key, or given back with
//!    other filters (another workflow, status partition, resource, tag or time range) fails
//!    the tag check and is refused with [`StoreError::InvalidCursor`]; it never starts a
//!    listing somewhere else. The page size is not bound: a client may change it between
//!    pages.
//! 3. The key never leaves the process; cursors stay valid as long as the key does, so
//!    every process of one deployment must share it (the functions read `CURSOR_KEY`).

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use crate::error::StoreError;
use crate::store::RunQuery;

/// The cursor format's version, the first byte of every cursor.
const VERSION: u8 = 1;
/// Bytes of the HMAC kept in a cursor (128 bits).
const TAG_LEN: usize = 16;

/// The secret that signs a store's cursors. Build it from configuration with
/// [`CursorKey::derive`]; [`CursorKey::default`] is a fixed built-in key, so local stores
/// (`wf list`) page with no configuration at all. That default detects altered, truncated
/// and other-query cursors, but is not secret: deployments set their own.
#[derive(Clone, PartialEq, Eq)]
pub struct CursorKey([u8; 32]);

impl CursorKey {
    /// Shortest secret [`CursorKey::derive`] accepts, in bytes.
    pub const MIN_SECRET_LEN: usize = 16;

    /// The key derived from `secret` (any length; hashed to 256 bits). `None` if the secret
    /// is shorter than [`CursorKey::MIN_SECRET_LEN`] bytes.
    pub fn derive(secret: &[u8]) -> Option<Self> {
        (secret.len() >= Self::MIN_SECRET_LEN).then(|| Self::hash(secret))
    }

    fn hash(secret: &[u8]) -> Self {
        let mut digest = Sha256::new();
        digest.update(b"wf cursor key\0");
        digest.update(secret);
        Self(digest.finalize().into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        #[expect(
            clippy::expect_used,
            reason = "HMAC accepts a key of any length, so 32 bytes cannot be refused"
        )]
        <Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.0).expect("an HMAC key of 32 bytes")
    }
}

impl Default for CursorKey {
    fn default() -> Self {
        Self::hash(b"wf built-in cursor key: not secret, set CURSOR_KEY")
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// An opaque position in a listing: give `Page::next` back, with the same filters, to get
/// the following page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a cursor string received from a caller. Checked when used.
    pub fn parse(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The string form to hand to callers.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cursor that resumes `query` after the run whose listing sort key is `sort_key`.
    pub(crate) fn issue(key: &CursorKey, query: &RunQuery, sort_key: &str) -> Self {
        let tag = tag(key, query, sort_key.as_bytes());
        let mut bytes = Vec::with_capacity(1 + TAG_LEN + sort_key.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(tag.get(..TAG_LEN).unwrap_or_default());
        bytes.extend_from_slice(sort_key.as_bytes());
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The sort key after which `query`'s next page starts, once the cursor is shown to be
    /// one this key issued for these filters. `InvalidCursor` otherwise.
    pub(crate) fn position(&self, key: &CursorKey, query: &RunQuery) -> Result<String, StoreError> {
        let invalid = |reason| StoreError::InvalidCursor { reason };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&self.0)
            .map_err(|_| invalid("is not a cursor this service issued"))?;
        let (version, rest) = bytes
            .split_first()
            .ok_or(invalid("is not a cursor this service issued"))?;
        if *version != VERSION || rest.len() <= TAG_LEN {
            return Err(invalid("is not a cursor this service issued"));
        }
        let (claimed, sort_key) = rest.split_at(TAG_LEN);
        let mut mac = key.mac();
        feed(&mut mac, query, sort_key);
        mac.verify_truncated_left(claimed).map_err(|_| {
            invalid("was altered, or was issued for other filters or by another deployment")
        })?;
        let sort_key = String::from_utf8(sort_key.to_vec())
            .ok()
            .filter(|k| crate::keys::parse_listing_sort_key(k).is_some())
            .ok_or(invalid("is not a cursor this service issued"))?;
        Ok(sort_key)
    }
}

fn tag(key: &CursorKey, query: &RunQuery, sort_key: &[u8]) -> Vec<u8> {
    let mut mac = key.mac();
    feed(&mut mac, query, sort_key);
    mac.finalize().into_bytes().to_vec()
}

/// Writes the signed message: version, every filter (length-prefixed, so no two queries
/// encode alike), then the position.
fn feed(mac: &mut Hmac<Sha256>, query: &RunQuery, sort_key: &[u8]) {
    let mut field = |value: Option<&[u8]>| match value {
        None => mac.update(&[0]),
        Some(bytes) => {
            mac.update(&[1]);
            mac.update(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
            mac.update(bytes);
        }
    };
    field(Some(b"wf-cursor".as_slice()));
    field(Some(&[VERSION]));
    field(query.workflow_id.as_ref().map(|w| w.as_str().as_bytes()));
    field(query.status.map(|s| s.as_str().as_bytes()));
    field(query.resource_id.as_ref().map(String::as_bytes));
    field(query.tag.as_ref().map(|(k, _)| k.as_bytes()));
    field(query.tag.as_ref().map(|(_, v)| v.as_bytes()));
    let instant = |at: chrono::DateTime<chrono::Utc>| {
        let mut bytes = at.timestamp().to_be_bytes().to_vec();
        bytes.extend_from_slice(&at.timestamp_subsec_nanos().to_be_bytes());
        bytes
    };
    field(query.created_from.map(instant).as_deref());
    field(query.created_to.map(instant).as_deref());
    field(Some(sort_key));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RunId, RunStatus, WorkflowId};

    fn sort_key() -> String {
        crate::keys::listing_sort_key(chrono::Utc::now(), &RunId::generate())
    }

    #[test]
    fn a_cursor_round_trips_under_its_key_and_query() {
        let key = CursorKey::derive(b"0123456789abcdef").unwrap();
        let query = RunQuery {
            workflow_id: Some(WorkflowId::parse("orders").unwrap()),
            status: Some(RunStatus::Running),
            ..RunQuery::default()
        };
        let position = sort_key();
        let cursor = Cursor::issue(&key, &query, &position);
        assert_eq!(cursor.position(&key, &query).unwrap(), position);
        let other_page_size = RunQuery {
            limit: 7,
            ..query.clone()
        };
        assert_eq!(
            cursor.position(&key, &other_page_size).unwrap(),
            position,
            "the page size may change between pages"
        );
    }

    #[test]
    fn short_secrets_are_refused_and_the_key_does_not_print() {
        assert!(CursorKey::derive(b"short").is_none());
        assert_eq!(format!("{:?}", CursorKey::default()), "CursorKey(..)");
        assert_ne!(
            CursorKey::derive(b"0123456789abcdef").unwrap(),
            CursorKey::default()
        );
    }

    #[test]
    fn a_tag_key_and_value_cannot_trade_bytes() {
        let key = CursorKey::default();
        let position = sort_key();
        let a = RunQuery {
            tag: Some(("ab".into(), "c".into())),
            ..RunQuery::default()
        };
        let b = RunQuery {
            tag: Some(("a".into(), "bc".into())),
            ..RunQuery::default()
        };
        let cursor = Cursor::issue(&key, &a, &position);
        assert!(matches!(
            cursor.position(&key, &b),
            Err(StoreError::InvalidCursor { .. })
        ));
    }
}
