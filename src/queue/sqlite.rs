//! The SQLite delivery store (temporary stub until the real one lands).
use std::path::Path;

use super::*;

pub struct SqliteStore;

impl SqliteStore {
    pub fn open(_path: &Path) -> Result<SqliteStore, StoreError> {
        Err(StoreError::Open("stub".into()))
    }
}

impl DeliveryStore for SqliteStore {
    fn enqueue(&self, _event: NewEvent) -> StoreFuture<'_, ()> {
        unimplemented!()
    }
    fn claim_due(&self, _t: &str, _n: i64, _l: usize) -> StoreFuture<'_, Vec<Claim>> {
        unimplemented!()
    }
    fn complete(&self, _c: Completion) -> StoreFuture<'_, Completed> {
        unimplemented!()
    }
    fn release(&self, _d: DeliveryId, _l: LeaseToken) -> StoreFuture<'_, ()> {
        unimplemented!()
    }
    fn next_due(&self, _t: &str) -> StoreFuture<'_, Option<i64>> {
        unimplemented!()
    }
    fn delivery(&self, _id: DeliveryId) -> StoreFuture<'_, Option<DeliveryDetail>> {
        unimplemented!()
    }
    fn check_writable(&self) -> StoreFuture<'_, ()> {
        unimplemented!()
    }
    fn work_signal(&self) -> &WorkSignal {
        unimplemented!()
    }
}
