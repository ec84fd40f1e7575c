//! `server.max_inflight_bytes`: how many request body bytes all connections
//! together may hold in memory at once.
//!
//! Without it, memory is `max_connections × max_body_bytes` (10 000 × 10 MiB
//! by default): anyone who can reach the listener could push the process out
//! of memory with bodies that fail verification anyway, since a signature
//! can only be checked once the whole body is in.
//!
//! A body with a `content-length` reserves its whole size before its first
//! byte is read, waiting for room until the request's read deadline, then
//! 503 `overloaded`; a request that waits holds nothing. A chunked body
//! grows its reservation as it arrives and is refused at once when there is
//! no room: waiting there while holding part of the budget could deadlock
//! many half-read bodies against each other. The reservation lives until the
//! request is answered (the body is stored by then, or dropped).
//!
//! Counted in KiB, so a semaphore's `u32` batch covers any body size.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The unit of the budget.
const UNIT: u64 = 1024;

/// The shared budget.
#[derive(Clone)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_units: u64,
}

/// Part of the budget, held by one request until it is answered.
#[derive(Default)]
pub struct BodyHold {
    permit: Option<OwnedSemaphorePermit>,
    units: u64,
}

/// There is no room for the body now (or, with a length, before the deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

impl BodyBudget {
    pub fn new(max_bytes: u64) -> BodyBudget {
        let total_units = max_bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS as u64);
        BodyBudget {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }

    /// Room for a body of `len` bytes, waiting until `deadline` at most.
    pub async fn reserve(&self, len: u64, deadline: Instant) -> Result<BodyHold, NoRoom> {
        let units = len.div_ceil(UNIT);
        if units > self.total_units {
            return Err(NoRoom);
        }
        let batch = u32::try_from(units).map_err(|_| NoRoom)?;
        let acquire = self.units.clone().acquire_many_owned(batch);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => Ok(BodyHold {
                permit: Some(permit),
                units,
            }),
            // Timed out, or the semaphore was closed (never done).
            _ => Err(NoRoom),
        }
    }

    /// Grow `hold` to cover `len` bytes in all, now or not at all.
    pub fn grow(&self, hold: &mut BodyHold, len: u64) -> Result<(), NoRoom> {
        let units = len.div_ceil(UNIT);
        if units <= hold.units {
            return Ok(());
        }
        let more = u32::try_from(units - hold.units).map_err(|_| NoRoom)?;
        let permit = self
            .units
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| NoRoom)?;
        match &mut hold.permit {
            Some(held) => held.merge(permit),
            None => hold.permit = Some(permit),
        }
        hold.units = units;
        Ok(())
    }

    /// Bytes free right now (for tests and the log).
    pub fn available_bytes(&self) -> u64 {
        self.units.available_permits() as u64 * UNIT
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    #[tokio::test]
    async fn a_reservation_waits_for_room_and_gives_it_back() {
        let budget = BodyBudget::new(10 * UNIT);
        let first = budget.reserve(8 * UNIT, soon()).await.expect("room");
        assert_eq!(budget.available_bytes(), 2 * UNIT);
        // No room before the deadline: refused, holding nothing.
        assert_eq!(budget.reserve(4 * UNIT, soon()).await.err(), Some(NoRoom));
        assert_eq!(budget.available_bytes(), 2 * UNIT);
        // Room made while waiting: granted.
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                budget
                    .reserve(4 * UNIT, Instant::now() + Duration::from_secs(5))
                    .await
                    .map(|_| ())
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert_eq!(waiting.await.expect("task"), Ok(()));
        assert_eq!(budget.available_bytes(), 10 * UNIT);
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_is_refused_at_once() {
        let budget = BodyBudget::new(10 * UNIT);
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(budget.reserve(11 * UNIT, far).await.err(), Some(NoRoom));
    }

    #[test]
    fn a_chunked_body_grows_its_hold_without_waiting() {
        let budget = BodyBudget::new(4 * UNIT);
        let mut hold = BodyHold::default();
        budget.grow(&mut hold, 10).expect("room");
        budget.grow(&mut hold, UNIT).expect("the same unit");
        assert_eq!(budget.available_bytes(), 3 * UNIT);
        budget.grow(&mut hold, 4 * UNIT).expect("room");
        assert_eq!(budget.grow(&mut hold, 4 * UNIT + 1), Err(NoRoom));
        drop(hold);
        assert_eq!(budget.available_bytes(), 4 * UNIT);
    }
}
