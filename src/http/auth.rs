//! Client tokens on the HTTP front (`--client-token-file`, `docs/security.md`): which
//! requests need `Authorization: Bearer <token>`, and the check. Pure: no IO.
//!
//! - Always open: `GET /`, `GET /status` and `GET /metrics` (the endpoints health checks
//!   and Prometheus poll; they show the server's role, zxids and counters, never znode
//!   data).
//! - Reads (every other `GET`): open, unless `--tokens-for-reads`.
//! - Writes (every other method: create, set, delete, multi, sessions, heartbeats,
//!   `POST /metadata`): need a token.
//!
//! Tokens are compared as SHA-256 digests in constant time, against every configured token
//! without stopping at a match, so neither the position of a difference nor its length
//! shows in the time an answer takes.

use sha2::{Digest, Sha256};
use tiny_http::Method;

use super::api::ApiError;
use crate::secrets::Secret;

/// The value of `WWW-Authenticate` on a 401 answer (RFC 6750).
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"zooweeper\"";

/// The tokens a server accepts, and whether reads need one.
#[derive(Clone)]
pub struct ClientAuth {
    digests: Vec<[u8; 32]>,
    for_reads: bool,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientAuth({} tokens, for_reads: {})",
            self.digests.len(),
            self.for_reads
        )
    }
}

/// What a request is, for the token check.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Access {
    /// Needs no token ever.
    Open,
    /// A read: needs a token with `--tokens-for-reads`.
    Read,
    /// A write: needs a token.
    Write,
}

/// Classifies a request by method and target (path and query).
pub fn access(method: &Method, url: &str) -> Access {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    match method {
        Method::Get | Method::Head => match path {
            "/" | "/status" | "/metrics" => Access::Open,
            _ => Access::Read,
        },
        _ => Access::Write,
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl ClientAuth {
    /// Accepts `tokens`; reads need one too if `for_reads`.
    pub fn new(tokens: &[Secret], for_reads: bool) -> ClientAuth {
        ClientAuth {
            digests: tokens.iter().map(|t| digest(t.expose())).collect(),
            for_reads,
        }
    }

    /// Whether `token` is one of the configured tokens (constant time, see the module).
    pub fn accepts(&self, token: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let d = digest(token);
        let mut any = subtle::Choice::from(0);
        for known in &self.digests {
            any |= known.ct_eq(&d);
        }
        bool::from(any)
    }

    /// Checks a request's `Authorization` header (its value, if any).
    ///
    /// # Errors
    /// 401 `unauthorized` when the request needs a token and carries none, a malformed
    /// one, or one that is not configured. The answer must carry
    /// `WWW-Authenticate: ` [`WWW_AUTHENTICATE`].
    pub fn check(
        &self,
        method: &Method,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<(), ApiError> {
        let needed = match access(method, url) {
            Access::Open => false,
            Access::Read => self.for_reads,
            Access::Write => true,
        };
        if !needed {
            return Ok(());
        }
        let Some(value) = authorization else {
            return Err(unauthorized(
                "this request needs a client token: send `Authorization: Bearer <token>`",
            ));
        };
        let token = match value.trim().split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => {
                return Err(unauthorized(
                    "the Authorization header must be `Bearer <token>`",
                ))
            }
        };
        if token.is_empty() || !self.accepts(token.as_bytes()) {
            return Err(unauthorized("the client token is not valid"));
        }
        Ok(())
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(401, "unauthorized", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(for_reads: bool) -> ClientAuth {
        ClientAuth::new(
            &[
                Secret::from_bytes(b"token-one-0123456789"),
                Secret::from_bytes(b"token-two-abcdefghij"),
            ],
            for_reads,
        )
    }

    fn code(r: Result<(), ApiError>) -> Option<(u16, &'static str)> {
        r.err().map(|e| (e.status, e.code))
    }

    #[test]
    fn writes_need_a_configured_token() {
        let a = auth(false);
        for (m, url) in [
            (Method::Post, "/znodes/a"),
            (Method::Put, "/znodes/a?version=1"),
            (Method::Delete, "/znodes/a"),
            (Method::Post, "/multi"),
            (Method::Post, "/sessions"),
            (Method::Post, "/sessions/5/heartbeat"),
            (Method::Post, "/metadata"),
        ] {
            assert_eq!(code(a.check(&m, url, None)), Some((401, "unauthorized")));
            assert_eq!(
                code(a.check(&m, url, Some("Bearer nope-nope-nope-nope"))),
                Some((401, "unauthorized"))
            );
            assert_eq!(
                a.check(&m, url, Some("Bearer token-two-abcdefghij")),
                Ok(())
            );
            assert_eq!(
                a.check(&m, url, Some("bearer  token-one-0123456789 ")),
                Ok(())
            );
        }
    }

    #[test]
    fn a_malformed_header_or_a_prefix_of_a_token_is_refused() {
        let a = auth(false);
        let w = |h| code(a.check(&Method::Post, "/znodes/a", Some(h)));
        for h in [
            "token-one-0123456789",
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer token-one-012345678",
            "Bearer token-one-01234567890",
        ] {
            assert_eq!(w(h), Some((401, "unauthorized")), "{h:?}");
        }
    }

    #[test]
    fn reads_are_open_unless_tokens_for_reads() {
        for url in [
            "/znodes/a",
            "/metadata",
            "/watch/a?kind=data",
            "/sessions/3",
        ] {
            assert_eq!(auth(false).check(&Method::Get, url, None), Ok(()));
            assert_eq!(
                code(auth(true).check(&Method::Get, url, None)),
                Some((401, "unauthorized"))
            );
            assert_eq!(
                auth(true).check(&Method::Get, url, Some("Bearer token-one-0123456789")),
                Ok(())
            );
        }
    }

    #[test]
    fn status_metrics_and_the_index_stay_open() {
        for url in ["/", "/status", "/metrics", "/status?x=1"] {
            assert_eq!(auth(true).check(&Method::Get, url, None), Ok(()), "{url}");
        }
        // Only their GET: anything else on them is a write attempt.
        assert!(auth(true).check(&Method::Post, "/status", None).is_err());
        // A path that merely starts like an open one is not open.
        assert!(auth(true).check(&Method::Get, "/statusx", None).is_err());
    }

    #[test]
    fn debug_shows_no_token() {
        let s = format!("{:?}", auth(true));
        assert!(!s.contains("token-one"), "{s}");
    }
}
