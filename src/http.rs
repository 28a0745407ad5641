//! The tiny_http front. (Filled in by the http work.)

// TEMP http stand-in: the interface only.
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// TEMP stand-in.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub threads: usize,
    pub max_body_bytes: usize,
    pub write_timeout: Duration,
}

/// TEMP stand-in.
pub struct HttpServer {}

impl HttpServer {
    /// TEMP stand-in.
    pub fn local_addr(&self) -> SocketAddr {
        unimplemented!("TEMP http stand-in")
    }
    /// TEMP stand-in.
    pub fn shutdown(self) {
        unimplemented!("TEMP http stand-in")
    }
}

/// TEMP stand-in.
pub fn start(
    _addr: SocketAddr,
    _handle: crate::runtime::Handle,
    _cfg: HttpConfig,
) -> io::Result<HttpServer> {
    unimplemented!("TEMP http stand-in")
}
