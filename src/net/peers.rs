//! Peer connections of the [`EventLoop`]: accepting, dialing and redialing with backoff,
//! dial-back hints, the HELLO handshake, reading frames, four-letter words, closing and
//! flushing.
//!
//! One connection per pair of servers: the higher id dials the lower one and reconnects
//! with a capped, deterministically jittered backoff; the lower id accepts. Both sides
//! send HELLO first; only after the handshake does the machine hear `PeerUp`.

use std::io;

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::Token;

use super::conn::{Conn, Phase, ReadEnd};
use super::event_loop::{EventLoop, LoopError};
use super::{fourlw, Machine};
use crate::config::FourLetterWords;
use crate::wire::PeerMsg;
use crate::zab::{Input, Millis, PeerId};

/// A peer whose unsent bytes exceed this is disconnected (it is not reading).
pub const WBUF_CAP_BYTES: usize = 256 * 1024 * 1024;
/// A connection that has not finished its handshake (or its four-letter word) by then is
/// closed.
pub const HANDSHAKE_TIMEOUT_MS: Millis = 5_000;
/// Open connections on the peer port, beyond which new ones are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// First reconnect delay.
pub const BACKOFF_MIN_MS: Millis = 50;
/// Longest reconnect delay (before jitter).
pub const BACKOFF_MAX_MS: Millis = 1_000;

/// Reconnect state for a peer we dial (a lower id).
pub(super) struct Dialer {
    pub(super) token: Option<Token>,
    pub(super) retry_at: Option<Millis>,
    pub(super) backoff_ms: Millis,
}

impl<M: Machine> EventLoop<M> {
    fn new_token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    pub(super) fn dial(&mut self, id: PeerId) {
        let Some(addr) = self.config.member(id).map(|s| s.peer) else {
            return;
        };
        let hello = self.hello();
        let now = self.now();
        let auth = match self.start_auth() {
            Ok(auth) => auth,
            Err(e) => {
                warn!("cannot dial server {id} at {addr}: {e}");
                self.schedule_redial(id);
                return;
            }
        };
        let result = TcpStream::connect(addr).and_then(|stream| {
            let mut conn = Conn::dialing(stream, addr, id, &hello, now);
            if let Some((state, challenge)) = auth {
                conn.queue(&challenge);
                conn.auth = Some(state);
            }
            let token = Token(self.next_token + 1);
            conn.register(self.poll.registry(), token)?;
            Ok((token, conn))
        });
        match result {
            Ok((token, conn)) => {
                self.next_token = token.0;
                debug!("dialing server {id} at {addr}");
                self.conns.insert(token, conn);
                if let Some(d) = self.dialers.get_mut(&id) {
                    d.token = Some(token);
                    d.retry_at = None;
                }
            }
            Err(e) => {
                debug!("cannot dial server {id} at {addr}: {e}");
                self.schedule_redial(id);
            }
        }
    }

    /// Tells every higher id that this server is (back) up, so it dials now instead of
    /// after its grown backoff: a connection whose HELLO names a lower id is that hint
    /// (ZooKeeper's QuorumCnxManager does the same). The other side closes it and dials.
    pub(super) fn hint_higher_ids(&mut self) {
        let me = self.config.id;
        let hello = self.hello();
        let now = self.now();
        let higher: Vec<(PeerId, std::net::SocketAddr)> = self
            .config
            .servers
            .iter()
            .filter(|s| s.id > me)
            .map(|s| (s.id, s.peer))
            .collect();
        for (id, addr) in higher {
            let token = Token(self.next_token + 1);
            let conn = TcpStream::connect(addr).and_then(|stream| {
                let mut conn = Conn::dialing(stream, addr, id, &hello, now);
                conn.register(self.poll.registry(), token)?;
                Ok(conn)
            });
            match conn {
                Ok(conn) => {
                    self.next_token = token.0;
                    debug!("asking server {id} at {addr} to dial us");
                    self.conns.insert(token, conn);
                }
                Err(e) => debug!("server {id} at {addr} not reachable for a dial-back hint: {e}"),
            }
        }
    }

    /// Next attempt after the current backoff plus a jitter fixed by the pair of ids, so
    /// servers do not retry in lockstep; the backoff doubles up to [`BACKOFF_MAX_MS`].
    fn schedule_redial(&mut self, id: PeerId) {
        let me = self.config.id;
        let now = self.now();
        if let Some(d) = self.dialers.get_mut(&id) {
            let jitter =
                (me.wrapping_mul(7919) ^ id.wrapping_mul(104_729)) % (d.backoff_ms / 4 + 1);
            d.token = None;
            d.retry_at = Some(now + d.backoff_ms + jitter);
            d.backoff_ms = (d.backoff_ms * 2).min(BACKOFF_MAX_MS);
        }
    }

    fn hello(&self) -> PeerMsg {
        PeerMsg::Hello {
            server_id: self.config.id,
            cluster: self.config.cluster.clone(),
        }
    }

    pub(super) fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if self.conns.len() >= MAX_CONNECTIONS {
                        warn!(
                            "refusing connection from {addr}: {MAX_CONNECTIONS} connections open"
                        );
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let mut conn = Conn::accepted(stream, addr, self.now());
                    let token = self.new_token();
                    match conn.register(self.poll.registry(), token) {
                        Ok(()) => {
                            debug!("accepted connection from {addr}");
                            self.conns.insert(token, conn);
                        }
                        Err(e) => warn!("cannot register connection from {addr}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    pub(super) fn conn_event(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
    ) -> Result<(), LoopError> {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        if writable && conn.connecting {
            match conn.finish_connect() {
                Ok(true) => {
                    let _ = conn.stream.set_nodelay(true);
                    debug!("connected to {}", conn.addr);
                }
                Ok(false) => return Ok(()),
                Err(e) => return self.close(token, &format!("connect failed: {e}")),
            }
        }
        if writable {
            self.to_flush.insert(token);
        }
        if readable {
            self.read_conn(token)?;
        }
        Ok(())
    }

    fn read_conn(&mut self, token: Token) -> Result<(), LoopError> {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        if conn.connecting {
            return Ok(());
        }
        let end = conn.read_available(&mut self.scratch);
        if let Phase::FourLetter(word) = conn.phase {
            self.answer_word(token, word);
        }
        let mut frames = Vec::new();
        let mut bad = None;
        if let Some(conn) = self.conns.get_mut(&token) {
            if matches!(
                conn.phase,
                Phase::Handshake | Phase::Authenticating(_) | Phase::Up(_)
            ) {
                loop {
                    match conn.decoder.next_msg() {
                        Ok(Some(m)) => frames.push(m),
                        Ok(None) => break,
                        Err(e) => {
                            bad = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        for msg in frames {
            if !self.conns.contains_key(&token) {
                return Ok(());
            }
            self.on_frame(token, msg)?;
        }
        if let Some(e) = bad {
            let from = self.conns.get(&token).map(|c| c.addr);
            if let Some(addr) = from {
                warn!(
                    "closing peer connection from {addr}: bad frame: {}",
                    e.reason()
                );
            }
            return self.close(token, &format!("bad frame: {}", e.reason()));
        }
        match end {
            ReadEnd::Drained => Ok(()),
            ReadEnd::More => {
                self.read_again.insert(token);
                Ok(())
            }
            ReadEnd::Eof => self.close(token, "closed by the other side"),
            ReadEnd::Failed(e) => self.close(token, &format!("read failed: {e}")),
        }
    }

    fn answer_word(&mut self, token: Token, word: [u8; 4]) {
        let status = self.machine.status();
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        let info = fourlw::Info {
            status: &status,
            metrics: &self.metrics,
            config: &self.config,
            connections: self.conns.len(),
            peers: &peers,
        };
        let text = if self.config.client.four_letter_words.allows(&word) {
            fourlw::answer(&word, &info).unwrap_or_default()
        } else {
            FourLetterWords::refusal(&word)
        };
        if let Some(conn) = self.conns.get_mut(&token) {
            debug!(
                "four-letter word {:?} from {}",
                String::from_utf8_lossy(&word),
                conn.addr
            );
            conn.queue_bytes(text.as_bytes());
            conn.phase = Phase::Closing;
            self.to_flush.insert(token);
        }
    }

    fn on_frame(&mut self, token: Token, msg: PeerMsg) -> Result<(), LoopError> {
        let phase = match self.conns.get(&token) {
            Some(c) => c.phase,
            None => return Ok(()),
        };
        match (phase, msg) {
            (Phase::Handshake, PeerMsg::Hello { server_id, cluster }) => {
                self.on_hello(token, server_id, &cluster)
            }
            (Phase::Handshake, other) => self.close(
                token,
                &format!("expected HELLO first, got {}", other.name()),
            ),
            (Phase::Authenticating(id), msg) => self.on_auth_frame(token, id, msg),
            (Phase::Up(id), m @ (PeerMsg::AuthChallenge { .. } | PeerMsg::AuthProof { .. })) => {
                self.on_auth_frame_when_up(token, id, &m)
            }
            (Phase::Up(_), PeerMsg::Hello { .. }) => self.close(token, "a second HELLO"),
            (Phase::Up(peer), msg) => {
                self.metrics.packets_received += 1;
                self.feed(Input::Peer { from: peer, msg })
            }
            _ => Ok(()),
        }
    }

    /// Checks the other side's HELLO, answers an accepted one with ours, and brings the
    /// peer up (replacing an older connection to the same peer).
    fn on_hello(&mut self, token: Token, id: PeerId, cluster: &str) -> Result<(), LoopError> {
        let me = self.config.id;
        let Some(conn) = self.conns.get(&token) else {
            return Ok(());
        };
        let refusal = if cluster != self.config.cluster {
            Some(format!(
                "server {id} is in cluster {cluster:?}, this is {:?}",
                self.config.cluster
            ))
        } else if id == me || self.config.member(id).is_none() {
            Some(format!("server id {id} is not a member of this ensemble"))
        } else {
            match conn.dialed {
                Some(expect) if expect != id => {
                    Some(format!("dialed server {expect} but server {id} answered"))
                }
                None if id < me => {
                    // A dial-back hint: server `id` is up. Dial it now unless we are
                    // connected to it already.
                    if !self.peers.contains_key(&id) {
                        if let Some(d) = self.dialers.get_mut(&id) {
                            if d.token.is_none() {
                                d.backoff_ms = BACKOFF_MIN_MS;
                                d.retry_at = Some(0);
                            }
                        }
                    }
                    debug!("server {id} is up and asks to be dialed");
                    return self.close(token, "dial-back hint answered");
                }
                _ => None,
            }
        };
        if let Some(reason) = refusal {
            warn!("refusing peer connection from {}: {reason}", conn.addr);
            return self.close(token, &reason);
        }
        let accepted = conn.dialed.is_none();
        let auth = if accepted {
            match self.start_auth() {
                Ok(auth) => auth,
                Err(e) => return self.refuse(token, &e),
            }
        } else {
            None
        };
        let hello = self.hello();
        let secret = self.config.security.peer_secret.is_some();
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        if accepted {
            conn.queue(&hello);
            if let Some((state, challenge)) = auth {
                conn.queue(&challenge);
                conn.auth = Some(state);
            }
            self.to_flush.insert(token);
        }
        if secret {
            conn.phase = Phase::Authenticating(id);
            debug!("authenticating server {id} ({})", conn.addr);
            return Ok(());
        }
        self.peer_up(token, id)
    }

    /// Makes the connection `token`, whose handshake (and authentication) is complete,
    /// the link to peer `id`, replacing an older connection to it.
    pub(super) fn peer_up(&mut self, token: Token, id: PeerId) -> Result<(), LoopError> {
        if let Some(&old) = self.peers.get(&id) {
            if old != token {
                self.close(old, "replaced by a newer connection")?;
            }
        }
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        conn.phase = Phase::Up(id);
        info!("peer {id} is up ({})", conn.addr);
        if let Some(d) = self.dialers.get_mut(&id) {
            d.backoff_ms = BACKOFF_MIN_MS;
        }
        self.peers.insert(id, token);
        self.metrics.peers_connected = self.peers.len();
        self.dirty = true;
        self.feed(Input::PeerUp { peer: id })
    }

    /// Closes a connection; a peer that was up goes down, a dialed peer is redialed.
    pub(super) fn close(&mut self, token: Token, reason: &str) -> Result<(), LoopError> {
        let Some(mut conn) = self.conns.remove(&token) else {
            return Ok(());
        };
        if let Some(peer) = conn.peer() {
            let t = self.retired_bytes.entry(peer).or_default();
            t.0 += conn.bytes_in;
            t.1 += conn.bytes_out;
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.to_flush.remove(&token);
        self.read_again.remove(&token);
        if let Some(id) = conn.dialed {
            if self
                .dialers
                .get(&id)
                .is_some_and(|d| d.token == Some(token))
            {
                self.schedule_redial(id);
            }
        }
        match conn.phase {
            Phase::Authenticating(id) => {
                warn!(
                    "refusing peer connection from {}: server {id} did not authenticate \
                     ({reason}; does it have the same --peer-secret-file?)",
                    conn.addr
                );
                Ok(())
            }
            Phase::Up(id) if self.peers.get(&id) == Some(&token) => {
                info!("peer {id} is down ({}): {reason}", conn.addr);
                self.peers.remove(&id);
                self.metrics.peers_connected = self.peers.len();
                self.dirty = true;
                self.feed(Input::PeerDown { peer: id })
            }
            Phase::Closing => Ok(()),
            _ => {
                debug!("connection {} closed: {reason}", conn.addr);
                Ok(())
            }
        }
    }

    /// Writes what connections have buffered; closes those that failed or finished.
    pub(super) fn flush_pending(&mut self) -> Result<(), LoopError> {
        while let Some(token) = self.to_flush.pop_first() {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            let result = conn
                .flush()
                .and_then(|()| conn.update_interest(self.poll.registry(), token));
            let over = conn.pending_write() > WBUF_CAP_BYTES;
            let reason = match result {
                Err(e) => Some(format!("write failed: {e}")),
                Ok(()) if over => Some(format!("not reading: over {WBUF_CAP_BYTES} bytes unsent")),
                Ok(()) => None,
            };
            if let Some(reason) = reason {
                self.close(token, &reason)?;
            }
        }
        Ok(())
    }
}
