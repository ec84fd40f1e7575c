//! The admin listing: newest first, filtered, paged by an opaque cursor.
//!
//! Read without a script: a merge, in Rust, of each target's sorted set by
//! sequence (`all`, or `s:<state>` when a state is asked for; an event's own
//! deliveries when an event is), then one pipelined read of the records on
//! the page. Records changed between the two reads show as they are now.

use redis::Value;

use super::codec::{self, RECORD_FIELDS};
use super::error::redis_error;
use super::{Shared, id_text, keys};
use crate::queue::{DeliveryPage, DeliveryQuery, DeliveryRecord, StoreError};

/// Cursors look like `r1.<seq>`: the prefix versions the format and keeps a
/// bare number (or another store's token) from being taken for one.
const CURSOR_PREFIX: &str = "r1.";

fn encode_cursor(seq: i64) -> String {
    format!("{CURSOR_PREFIX}{seq:x}")
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let hex = cursor.strip_prefix(CURSOR_PREFIX)?;
    i64::from_str_radix(hex, 16).ok().filter(|s| *s > 0)
}

impl Shared {
    /// One page, newest first.
    pub(super) async fn list(&self, q: DeliveryQuery) -> Result<DeliveryPage, StoreError> {
        let before = match &q.cursor {
            Some(c) => decode_cursor(c).ok_or(StoreError::InvalidCursor)?,
            None => i64::MAX,
        };
        let limit = if q.limit == 0 { 100 } else { q.limit };
        let found = self.candidates(&q, before, limit + 1).await?;
        let more = found.len() > limit;
        let page: Vec<(String, String)> = found
            .into_iter()
            .take(limit)
            .map(|(_, t, id)| (t, id))
            .collect();
        let records = self.records(&page).await?;
        let next = match records.last() {
            Some((_, seq)) if more => Some(encode_cursor(*seq)),
            _ => None,
        };
        Ok(DeliveryPage {
            deliveries: records.into_iter().map(|(r, _)| r).collect(),
            next,
        })
    }

    /// The records of these (target, id) pairs with their sequence, in one
    /// round trip; deliveries deleted meanwhile are left out.
    async fn records(
        &self,
        wanted: &[(String, String)],
    ) -> Result<Vec<(DeliveryRecord, i64)>, StoreError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (t, id) in wanted {
            pipe.cmd("HMGET")
                .arg(keys::target(&self.prefix, t, &format!("d:{id}")))
                .arg(&RECORD_FIELDS[..])
                .arg("seq");
        }
        let rows: Vec<Vec<Value>> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seq = row.last().and_then(codec::int);
            if let (Some(record), Some(seq)) = (codec::record(&row)?, seq) {
                out.push((record, seq));
            }
        }
        Ok(out)
    }

    /// For each target, when its oldest unfinished delivery was accepted:
    /// the lowest sequence of its `s:pending`, `s:retrying` and
    /// `s:in_flight` sets, then that record's creation time (two round trips).
    pub(super) async fn oldest_waiting(
        &self,
        targets: &[String],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        const WAITING: [&str; 3] = ["s:pending", "s:retrying", "s:in_flight"];
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for t in targets {
            for set in WAITING {
                pipe.cmd("ZRANGE")
                    .arg(keys::target(&self.prefix, t, set))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES");
            }
        }
        let firsts: Vec<Vec<(String, i64)>> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        let oldest: Vec<Option<String>> = firsts
            .chunks(WAITING.len())
            .map(|sets| {
                sets.iter()
                    .flatten()
                    .min_by_key(|(_, seq)| *seq)
                    .map(|(id, _)| id.clone())
            })
            .collect();
        let found: Vec<(usize, &String, String)> = targets
            .iter()
            .zip(oldest)
            .enumerate()
            .filter_map(|(i, (t, id))| Some((i, t, id?)))
            .collect();
        let mut out = vec![None; targets.len()];
        if found.is_empty() {
            return Ok(out);
        }
        let mut pipe = redis::pipe();
        for (_, t, id) in &found {
            pipe.cmd("HGET")
                .arg(keys::target(&self.prefix, t, &format!("d:{id}")))
                .arg("c");
        }
        let created: Vec<Option<i64>> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| redis_error(&e))?;
        for ((i, _, _), c) in found.iter().zip(created) {
            out[*i] = c;
        }
        Ok(out)
    }

    /// Up to `n` (sequence, target, id) of the newest deliveries before
    /// `before` matching `q`, newest first.
    async fn candidates(
        &self,
        q: &DeliveryQuery,
        before: i64,
        n: usize,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let mut conn = self.conn.clone();
        let mut found = Vec::new();
        if let Some(event) = q.event_id {
            let ev: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(keys::global(
                    &self.prefix,
                    &format!("ev:{}", id_text(event)),
                ))
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
            let pairs: Vec<(String, String)> = ev
                .into_iter()
                .filter_map(|(f, id)| Some((f.strip_prefix("t:")?.to_owned(), id)))
                .filter(|(t, _)| q.target.as_ref().is_none_or(|want| want == t))
                .collect();
            for (record, seq) in self.records(&pairs).await? {
                if seq < before && q.state.is_none_or(|s| s == record.state) {
                    found.push((seq, record.target, id_text(record.id)));
                }
            }
        } else {
            let targets = match &q.target {
                Some(t) => vec![t.clone()],
                None => self.targets().await?,
            };
            let set = q
                .state
                .map_or_else(|| "all".to_owned(), |s| format!("s:{}", s.as_str()));
            let mut pipe = redis::pipe();
            for t in &targets {
                pipe.cmd("ZREVRANGEBYSCORE")
                    .arg(keys::target(&self.prefix, t, &set))
                    .arg(format!("({before}"))
                    .arg("-inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(n);
            }
            let per_target: Vec<Vec<(String, i64)>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e))?;
            for (t, rows) in targets.iter().zip(per_target) {
                found.extend(rows.into_iter().map(|(id, seq)| (seq, t.clone(), id)));
            }
        }
        found.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
        found.truncate(n);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(12345)), Some(12345));
        for bad in ["", "12345", "r1.", "r1.zz", "c1.10", "r1.-5", "r1.0"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
