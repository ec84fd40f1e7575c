//! The SQLite delivery store (stub).
