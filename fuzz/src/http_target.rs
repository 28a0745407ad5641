//! HTTP routing (`src/http/route.rs`): method, URL and body in, a validated route or a
//! clear error out.

use tiny_http::Method;
use zooweeper::http::route::{percent_decode, route, Route};
use zooweeper::wire::TxnOp;
use zooweeper::ztree::validate_path;

const METHODS: [Method; 6] = [
    Method::Get,
    Method::Post,
    Method::Put,
    Method::Delete,
    Method::Head,
    Method::Patch,
];

/// Input: byte 0 picks the method, then the URL up to the first newline, then the body.
/// No panic; every routed path is a valid znode path; every write's op round-trips
/// through the txn encoding.
pub fn http_route(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = &METHODS[usize::from(m) % METHODS.len()];
    let (url, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let url = String::from_utf8_lossy(url);
    let _ = percent_decode(&url);
    match route(method, &url, body) {
        Ok(Route::GetZnode { path, .. }) => {
            assert!(validate_path(&path).is_ok(), "routed bad path {path:?}");
        }
        Ok(Route::Watch(w)) => {
            assert!(
                validate_path(&w.path).is_ok(),
                "watch of bad path {:?}",
                w.path
            );
        }
        Ok(Route::Write(op)) => {
            let znode = !matches!(op, TxnOp::PutProcess { .. } | TxnOp::PutEvent { .. });
            if let Some(p) = op.path().filter(|_| znode) {
                assert!(validate_path(p).is_ok(), "write to bad path {p:?}");
            }
            super::round_trip_op(&op);
        }
        Ok(_) | Err(_) => {}
    }
}
