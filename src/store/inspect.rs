//! Read-only inspection of a data dir.
