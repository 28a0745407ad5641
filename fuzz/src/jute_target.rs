//! The ZooKeeper client protocol decoder (`src/zk/jute.rs`), as the client port uses it.

use zooweeper::zk::jute::{self, ConnectRequest, Request, RequestHeader};
use zooweeper::zk::ops;
use zooweeper::ztree::ZTree;

/// Input: byte 0 even: a ConnectRequest body; odd: a request frame body (header, then the
/// request). Every request accepted re-encodes to itself, converts to a txn (or a clear
/// refusal) without panicking, and a read runs on a tree without panicking.
pub fn jute(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        if let Ok(c) = ConnectRequest::decode(body) {
            let mut out = Vec::new();
            c.encode(&mut out);
            assert_eq!(ConnectRequest::decode(&out), Ok(c), "connect round trip");
        }
        return;
    }
    let mut r = jute::Reader::new(body);
    let Ok(header) = RequestHeader::read(&mut r) else {
        return;
    };
    let Ok(req) = Request::decode(header.op, &body[8..]) else {
        return;
    };
    if !matches!(req, Request::Unsupported(_)) {
        assert_eq!(req.op_code(), header.op, "op code of {req:?}");
        let mut out = Vec::new();
        req.encode(&mut out);
        assert_eq!(
            Request::decode(header.op, &out).as_ref(),
            Ok(&req),
            "request round trip"
        );
    }
    if ops::is_write(&req) {
        if let Ok(op) = ops::write_txn(&req, 0x1234, &[]) {
            super::round_trip_op(&op);
        }
    } else {
        let _ = ops::read(&ZTree::default(), &req, &[]);
    }
}
