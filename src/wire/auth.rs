//! Peer authentication: the proofs of the AUTHCHALLENGE/AUTHPROOF exchange that follows
//! HELLO when the ensemble has a secret. Pure: no IO, clock, threads or randomness (the
//! caller brings the nonces). `wire-spec.md`, section 3 "Peer authentication".
//!
//! Each side sends a fresh random nonce (AUTHCHALLENGE), then proves it knows the
//! ensemble secret with an HMAC-SHA256 over both nonces, both server ids, the cluster name
//! and the direction (AUTHPROOF). The secret never crosses the wire; a proof recorded on
//! one connection is worthless on another (the verifier's nonce differs), and a proof
//! cannot be reflected back to its sender (the direction and the ids are bound).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::types::PeerId;

/// Bytes in an AUTHCHALLENGE nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes in an AUTHPROOF MAC (HMAC-SHA256).
pub const MAC_BYTES: usize = 32;
/// Shortest ensemble secret accepted, in bytes: a handshake seen on the wire lets anyone
/// try guesses offline, so the secret must be too long to guess.
pub const MIN_SECRET_BYTES: usize = 16;

/// What every MAC input starts with, so a proof can never be mistaken for another use of
/// the same key.
pub const MAC_LABEL: &[u8] = b"zooweeper peer auth v1";

/// Who computed a proof: the side that opened the connection, or the side that accepted
/// it. Bound into the MAC so one side's proof is never valid as the other's.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Direction {
    /// The proof of the server that dialed (sent on the connection it opened).
    FromDialer = 1,
    /// The proof of the server that accepted the connection.
    FromAcceptor = 2,
}

/// Everything a proof is bound to, besides the secret.
#[derive(Copy, Clone, Debug)]
pub struct Transcript<'a> {
    /// The ensemble name both HELLOs carried.
    pub cluster: &'a str,
    /// The id of the server that dialed.
    pub dialer: PeerId,
    /// The id of the server that accepted.
    pub acceptor: PeerId,
    /// The dialer's AUTHCHALLENGE nonce.
    pub dialer_nonce: &'a [u8; NONCE_BYTES],
    /// The acceptor's AUTHCHALLENGE nonce.
    pub acceptor_nonce: &'a [u8; NONCE_BYTES],
}

impl Transcript<'_> {
    /// The bytes the MAC covers for `dir` (`wire-spec.md` gives them field by field).
    pub fn mac_input(&self, dir: Direction) -> Vec<u8> {
        let mut m = Vec::with_capacity(MAC_LABEL.len() + 1 + 8 + 8 + 4 + 64 + 64);
        m.extend_from_slice(MAC_LABEL);
        m.push(dir as u8);
        m.extend_from_slice(&self.dialer.to_be_bytes());
        m.extend_from_slice(&self.acceptor.to_be_bytes());
        m.extend_from_slice(&(self.cluster.len() as u32).to_be_bytes());
        m.extend_from_slice(self.cluster.as_bytes());
        m.extend_from_slice(self.dialer_nonce);
        m.extend_from_slice(self.acceptor_nonce);
        m
    }

    fn hmac(&self, secret: &[u8], dir: Direction) -> Hmac<Sha256> {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(&self.mac_input(dir));
        mac
    }

    /// The proof that the side `dir` sends.
    pub fn proof(&self, secret: &[u8], dir: Direction) -> [u8; MAC_BYTES] {
        self.hmac(secret, dir).finalize().into_bytes().into()
    }

    /// Whether `mac` is the proof side `dir` must send, compared in constant time.
    pub fn verify(&self, secret: &[u8], dir: Direction, mac: &[u8; MAC_BYTES]) -> bool {
        self.hmac(secret, dir).verify_slice(mac).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"correct horse battery staple";
    const ND: [u8; 32] = [0x11; 32];
    const NA: [u8; 32] = [0x22; 32];

    fn t<'a>(nd: &'a [u8; 32], na: &'a [u8; 32]) -> Transcript<'a> {
        Transcript {
            cluster: "zooweeper",
            dialer: 3,
            acceptor: 1,
            dialer_nonce: nd,
            acceptor_nonce: na,
        }
    }

    #[test]
    fn a_proof_verifies_with_the_same_secret_and_transcript() {
        let p = t(&ND, &NA).proof(SECRET, Direction::FromDialer);
        assert!(t(&ND, &NA).verify(SECRET, Direction::FromDialer, &p));
    }

    #[test]
    fn a_proof_fails_with_another_secret() {
        let p = t(&ND, &NA).proof(b"another secret of some length", Direction::FromDialer);
        assert!(!t(&ND, &NA).verify(SECRET, Direction::FromDialer, &p));
    }

    #[test]
    fn a_proof_is_bound_to_the_direction_both_nonces_both_ids_and_the_cluster() {
        let base = t(&ND, &NA);
        let p = base.proof(SECRET, Direction::FromDialer);
        assert!(
            !base.verify(SECRET, Direction::FromAcceptor, &p),
            "reflected"
        );
        let other_nonce = [0x33; 32];
        assert!(!t(&ND, &other_nonce).verify(SECRET, Direction::FromDialer, &p));
        assert!(!t(&other_nonce, &NA).verify(SECRET, Direction::FromDialer, &p));
        let mut swapped = base;
        swapped.dialer = 1;
        swapped.acceptor = 3;
        assert!(!swapped.verify(SECRET, Direction::FromDialer, &p));
        let mut other_cluster = base;
        other_cluster.cluster = "zooweeper2";
        assert!(!other_cluster.verify(SECRET, Direction::FromDialer, &p));
    }

    #[test]
    fn the_mac_input_has_the_documented_layout() {
        let m = t(&ND, &NA).mac_input(Direction::FromAcceptor);
        assert_eq!(&m[..22], MAC_LABEL);
        assert_eq!(m[22], 2);
        assert_eq!(&m[23..31], &3u64.to_be_bytes());
        assert_eq!(&m[31..39], &1u64.to_be_bytes());
        assert_eq!(&m[39..43], &9u32.to_be_bytes());
        assert_eq!(&m[43..52], b"zooweeper");
        assert_eq!(&m[52..84], &ND);
        assert_eq!(&m[84..116], &NA);
        assert_eq!(m.len(), 116);
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        // Guards against a wrong primitive: key "Jefe", data "what do ya want for nothing?".
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
