//! Peer authentication on the [`EventLoop`]'s connections: with an ensemble secret
//! (`--peer-secret-file`), after the HELLOs each side sends AUTHCHALLENGE with a fresh
//! random nonce and, once it has the other's nonce, AUTHPROOF, an HMAC-SHA256 with the
//! secret over both nonces, both ids, the cluster name and its direction
//! ([`crate::wire::auth`]). A peer comes up only after its proof verified. Anything else
//! (a wrong proof, a frame out of order, a server without a secret meeting one with) is
//! refused with a warning naming the address and the reason, and the connection closed.
//! `wire-spec.md` section 3, "Peer authentication".

use log::{info, warn};
use mio::Token;

use super::conn::{AuthState, Phase};
use super::event_loop::{EventLoop, LoopError};
use super::Machine;
use crate::wire::auth::{Direction, Transcript, NONCE_BYTES};
use crate::wire::PeerMsg;
use crate::zab::PeerId;

/// Why a server without a secret refuses a peer that sends authentication frames.
const PEER_HAS_SECRET: &str = "it has a peer secret (it sent an authentication frame) and \
                               this server has none: give every member the same \
                               --peer-secret-file";

impl<M: Machine> EventLoop<M> {
    /// A fresh nonce and the AUTHCHALLENGE carrying it, when this server has a secret.
    ///
    /// # Errors
    /// The OS could not provide random bytes.
    pub(super) fn start_auth(&self) -> Result<Option<(AuthState, PeerMsg)>, String> {
        if self.config.security.peer_secret.is_none() {
            return Ok(None);
        }
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| format!("no random bytes for a nonce: {e}"))?;
        let state = AuthState {
            my_nonce: nonce,
            their_nonce: None,
        };
        Ok(Some((state, PeerMsg::AuthChallenge { nonce })))
    }

    /// Logs why the connection `token` is refused (naming its address) and closes it.
    pub(super) fn refuse(&mut self, token: Token, reason: &str) -> Result<(), LoopError> {
        if let Some(conn) = self.conns.get_mut(&token) {
            warn!("refusing peer connection from {}: {reason}", conn.addr);
            if matches!(conn.phase, Phase::Authenticating(_)) {
                // Best effort: our own proof may still be queued, and with it the other
                // side can log why it refuses us too.
                let _ = conn.flush();
                // Logged here: the close that follows must not log it again.
                conn.phase = Phase::Handshake;
            }
        }
        self.close(token, reason)
    }

    /// A frame from server `id` while it authenticates.
    pub(super) fn on_auth_frame(
        &mut self,
        token: Token,
        id: PeerId,
        msg: PeerMsg,
    ) -> Result<(), LoopError> {
        match msg {
            PeerMsg::AuthChallenge { nonce } => self.on_challenge(token, id, nonce),
            PeerMsg::AuthProof { mac } => self.on_proof(token, id, &mac),
            other => self.refuse(
                token,
                &format!(
                    "server {id} did not authenticate: it sent {} where AUTHCHALLENGE or \
                     AUTHPROOF was due (it has no --peer-secret-file?)",
                    other.name()
                ),
            ),
        }
    }

    /// An authentication frame on a link that is up: from a server with a secret when
    /// this one has none, or a protocol error.
    pub(super) fn on_auth_frame_when_up(
        &mut self,
        token: Token,
        id: PeerId,
        msg: &PeerMsg,
    ) -> Result<(), LoopError> {
        let reason = if self.config.security.peer_secret.is_none() {
            format!("server {id}: {PEER_HAS_SECRET}")
        } else {
            format!("server {id} sent {} after authenticating", msg.name())
        };
        self.refuse(token, &reason)
    }

    /// Who dialed and who accepted on `token`, as the MAC binds them.
    fn transcript_ids(&self, token: Token, id: PeerId) -> Option<(PeerId, PeerId, Direction)> {
        let conn = self.conns.get(&token)?;
        let me = self.config.id;
        Some(if conn.dialed.is_some() {
            (me, id, Direction::FromDialer)
        } else {
            (id, me, Direction::FromAcceptor)
        })
    }

    /// The other side's nonce: answer with this side's proof.
    fn on_challenge(
        &mut self,
        token: Token,
        id: PeerId,
        nonce: [u8; NONCE_BYTES],
    ) -> Result<(), LoopError> {
        let Some(secret) = self.config.security.peer_secret.clone() else {
            return self.refuse(token, &format!("server {id}: {PEER_HAS_SECRET}"));
        };
        let Some((dialer, acceptor, mine)) = self.transcript_ids(token, id) else {
            return Ok(());
        };
        let cluster = self.config.cluster.clone();
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        let Some(state) = conn.auth.as_mut() else {
            return self.refuse(token, "authentication was not started on this connection");
        };
        if state.their_nonce.is_some() {
            return self.refuse(token, &format!("server {id} sent a second AUTHCHALLENGE"));
        }
        if nonce == state.my_nonce {
            return self.refuse(
                token,
                &format!("server {id} sent back this server's own nonce"),
            );
        }
        state.their_nonce = Some(nonce);
        let (dialer_nonce, acceptor_nonce) = match mine {
            Direction::FromDialer => (state.my_nonce, nonce),
            Direction::FromAcceptor => (nonce, state.my_nonce),
        };
        let mac = Transcript {
            cluster: &cluster,
            dialer,
            acceptor,
            dialer_nonce: &dialer_nonce,
            acceptor_nonce: &acceptor_nonce,
        }
        .proof(secret.expose(), mine);
        conn.queue(&PeerMsg::AuthProof { mac });
        self.to_flush.insert(token);
        Ok(())
    }

    /// The other side's proof: check it in constant time, then bring the peer up.
    fn on_proof(&mut self, token: Token, id: PeerId, mac: &[u8; 32]) -> Result<(), LoopError> {
        let Some(secret) = self.config.security.peer_secret.clone() else {
            return self.refuse(token, &format!("server {id}: {PEER_HAS_SECRET}"));
        };
        let Some((dialer, acceptor, mine)) = self.transcript_ids(token, id) else {
            return Ok(());
        };
        let theirs = match mine {
            Direction::FromDialer => Direction::FromAcceptor,
            Direction::FromAcceptor => Direction::FromDialer,
        };
        let Some(conn) = self.conns.get(&token) else {
            return Ok(());
        };
        let Some(state) = conn.auth.as_ref() else {
            return self.refuse(token, "authentication was not started on this connection");
        };
        let Some(their_nonce) = state.their_nonce else {
            return self.refuse(
                token,
                &format!("server {id} sent AUTHPROOF before AUTHCHALLENGE"),
            );
        };
        let (dialer_nonce, acceptor_nonce) = match mine {
            Direction::FromDialer => (state.my_nonce, their_nonce),
            Direction::FromAcceptor => (their_nonce, state.my_nonce),
        };
        let cluster = self.config.cluster.clone();
        let ok = Transcript {
            cluster: &cluster,
            dialer,
            acceptor,
            dialer_nonce: &dialer_nonce,
            acceptor_nonce: &acceptor_nonce,
        }
        .verify(secret.expose(), theirs, mac);
        if !ok {
            return self.refuse(
                token,
                &format!(
                    "server {id} failed peer authentication: wrong AUTHPROOF (a different \
                     --peer-secret-file, or not a member)"
                ),
            );
        }
        info!("server {id} authenticated ({})", conn.addr);
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.auth = None;
        }
        self.peer_up(token, id)
    }
}
