//! Durable state of one server: txn log segments, snapshots, epochs, recovery, and the
//! log-writer thread (group commit). File IO lives here and nowhere else.
//! (Interface sketched here; the body is filled in by the store work.)
