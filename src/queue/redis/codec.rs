//! Reading what the scripts and reads return: the reply every write script
//! starts with (the shared backlog counters), delivery records, claims and
//! attempts. A reply of the wrong shape is `StoreError::Unavailable`: it
//! means another program (or a newer hookgate) wrote under our prefix.

use bytes::Bytes;
use redis::Value;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::queue::{
    AttemptRecord, Claim, DeadReason, DeliveryRecord, DeliveryState, LeaseToken, RECORD_FORMAT,
    StoreError,
};

/// The hash fields of a record, in the order `record()` in `common.lua`
/// returns them; reads in Rust ask for the same list.
pub(super) const RECORD_FIELDS: [&str; 11] = [
    "id", "ev", "t", "r", "st", "dr", "n", "next", "err", "c", "u",
];

pub(super) fn malformed(what: &str) -> StoreError {
    StoreError::Unavailable(format!("redis: unreadable stored {what}"))
}

pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn blob(v: &Value) -> Option<Bytes> {
    match v {
        Value::BulkString(b) => Some(Bytes::copy_from_slice(b)),
        _ => None,
    }
}

fn uuid(v: &Value) -> Option<Uuid> {
    Uuid::parse_str(&text(v)?).ok()
}

pub(super) fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

/// The shared backlog as a script saw it: deliveries, bytes, and the
/// version that orders such copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct BacklogSnapshot {
    pub deliveries: i64,
    pub bytes: i64,
    pub version: i64,
}

/// A write script's reply: the backlog, then its own values.
#[derive(Debug)]
pub(super) struct Reply {
    pub backlog: BacklogSnapshot,
    pub rest: Vec<Value>,
}

impl Reply {
    pub(super) fn parse(v: Value) -> Result<Reply, StoreError> {
        let Value::Array(mut items) = v else {
            return Err(malformed("script reply"));
        };
        if items.len() < 3 {
            return Err(malformed("script reply"));
        }
        let rest = items.split_off(3);
        let n = |i: usize| int(&items[i]).ok_or_else(|| malformed("backlog counter"));
        Ok(Reply {
            backlog: BacklogSnapshot {
                deliveries: n(0)?,
                bytes: n(1)?,
                version: n(2)?,
            },
            rest,
        })
    }

    /// The script's status word (its first own value).
    pub(super) fn status(&self) -> &str {
        match self.rest.first() {
            Some(Value::BulkString(b)) => std::str::from_utf8(b).unwrap_or(""),
            Some(Value::SimpleString(s)) => s,
            _ => "",
        }
    }

    /// Own value `i` as a number.
    pub(super) fn int_at(&self, i: usize) -> Result<i64, StoreError> {
        self.rest
            .get(i)
            .and_then(int)
            .ok_or_else(|| malformed("script reply"))
    }
}

/// A delivery record from the values of [`RECORD_FIELDS`]; `Ok(None)` when
/// the hash is gone (every field nil).
pub(super) fn record(fields: &[Value]) -> Result<Option<DeliveryRecord>, StoreError> {
    if fields.first().is_none_or(|v| *v == Value::Nil) {
        return Ok(None);
    }
    let bad = || malformed("delivery");
    let f = |i: usize| fields.get(i).ok_or_else(bad);
    let opt_int = |i: usize| -> Result<Option<i64>, StoreError> {
        match f(i)? {
            Value::Nil => Ok(None),
            v => int(v).map(Some).ok_or_else(bad),
        }
    };
    let dead_reason = match f(5)? {
        Value::Nil => None,
        v => Some(
            text(v)
                .and_then(|s| s.parse::<DeadReason>().ok())
                .ok_or_else(bad)?,
        ),
    };
    Ok(Some(DeliveryRecord {
        id: uuid(f(0)?).ok_or_else(bad)?,
        event_id: uuid(f(1)?).ok_or_else(bad)?,
        target: text(f(2)?).ok_or_else(bad)?,
        route: text(f(3)?).ok_or_else(bad)?,
        state: text(f(4)?)
            .and_then(|s| s.parse::<DeliveryState>().ok())
            .ok_or_else(bad)?,
        dead_reason,
        attempt_count: int(f(6)?)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(bad)?,
        next_attempt_at_ms: opt_int(7)?,
        last_error: match f(8)? {
            Value::Nil => None,
            v => Some(text(v).ok_or_else(bad)?),
        },
        created_at_ms: int(f(9)?).ok_or_else(bad)?,
        updated_at_ms: int(f(10)?).ok_or_else(bad)?,
    }))
}

/// A claim from the fields `claim.lua` returns (`id, ev, r, n, b, src, rat,
/// body`) and the token it stored.
pub(super) fn claim(target: &str, v: &Value, lease: LeaseToken) -> Result<Claim, StoreError> {
    let bad = || malformed("delivery");
    let f = array(v).filter(|f| f.len() == 8).ok_or_else(bad)?;
    let count = |v: &Value| int(v).and_then(|n| u32::try_from(n).ok()).ok_or_else(bad);
    Ok(Claim {
        delivery_id: uuid(&f[0]).ok_or_else(bad)?,
        event_id: uuid(&f[1]).ok_or_else(bad)?,
        target: target.to_owned(),
        route: text(&f[2]).ok_or_else(bad)?,
        attempts_made: count(&f[3])?,
        attempts_in_budget: count(&f[4])?,
        source: text(&f[5]).ok_or_else(bad)?,
        received_at_ms: int(&f[6]).ok_or_else(bad)?,
        body: blob(&f[7]).ok_or_else(bad)?,
        lease,
    })
}

/// One attempt as stored in a delivery's attempt list.
#[derive(Serialize, Deserialize)]
struct StoredAttempt {
    fmt: u32,
    at: i64,
    dur: u64,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    excerpt: Option<String>,
}

pub(super) fn encode_attempt(a: &AttemptRecord) -> String {
    let stored = StoredAttempt {
        fmt: RECORD_FORMAT,
        at: a.at_ms,
        dur: a.duration_ms,
        status: a.status,
        error: a.error.clone(),
        excerpt: a.response_excerpt.clone(),
    };
    // Plain fields only: serialising cannot fail.
    serde_json::to_string(&stored).unwrap_or_default()
}

pub(super) fn decode_attempt(raw: &[u8]) -> Result<AttemptRecord, StoreError> {
    let s: StoredAttempt = serde_json::from_slice(raw).map_err(|_| malformed("attempt"))?;
    Ok(AttemptRecord {
        at_ms: s.at,
        duration_ms: s.dur,
        status: s.status,
        error: s.error,
        response_excerpt: s.excerpt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_round_trip() {
        let a = AttemptRecord {
            at_ms: 1_700_000_000_123,
            duration_ms: 42,
            status: Some(503),
            error: Some("connect \"x\"".into()),
            response_excerpt: Some("<html>\u{1f600}".into()),
        };
        assert_eq!(decode_attempt(encode_attempt(&a).as_bytes()).unwrap(), a);
        assert!(decode_attempt(b"{").is_err());
    }

    #[test]
    fn a_short_reply_is_refused() {
        assert!(Reply::parse(Value::Array(vec![Value::Int(1)])).is_err());
        let r = Reply::parse(Value::Array(vec![
            Value::Int(2),
            Value::BulkString(b"20".to_vec()),
            Value::Int(7),
            Value::BulkString(b"stored".to_vec()),
        ]))
        .unwrap();
        assert_eq!(
            (r.backlog.deliveries, r.backlog.bytes, r.backlog.version),
            (2, 20, 7)
        );
        assert_eq!(r.status(), "stored");
    }
}
