//! The event loop over real sockets, driven by a scripted machine instead of the Zab core:
//! handshake, refusals, reconnects, four-letter words and garbage on the peer port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::{EventLoop, LoopError, LoopSetup, Machine, PendingWrite, WAKER};
use crate::channels::{Handle, LoopMsg, View};
use crate::config::{Config, ServerAddr};
use crate::wire::{encode_frame, PeerMsg, TxnOp};
use crate::zab::{Action, Input, Millis, PeerId, Role, Status, Zxid};
use crate::ztree::{OpOk, ZTree};

/// Greets every peer that comes up with a PING carrying its own id, answers every client
/// write, and reports each input to the test.
struct Scripted {
    id: PeerId,
    tree: ZTree,
    seen: Sender<Input<PendingWrite>>,
    actions: Vec<Action<PendingWrite>>,
    answered: u64,
}

impl Machine for Scripted {
    fn handle(&mut self, _now: Millis, input: Input<PendingWrite>) {
        // A write is answered at once (and not reported: no test waits for one).
        let input = match input {
            Input::Client { req, .. } => {
                self.answered += 1;
                self.actions.push(Action::Reply {
                    req,
                    zxid: Zxid(self.answered),
                    result: Ok(OpOk::Deleted),
                });
                return;
            }
            other => other,
        };
        if let Input::PeerUp { peer } = &input {
            self.actions.push(Action::Send {
                to: *peer,
                msg: PeerMsg::Ping {
                    zxid: Zxid(self.id),
                },
            });
        }
        let _ = self.seen.send(input);
    }
    fn poll_action(&mut self) -> Option<Action<PendingWrite>> {
        if self.actions.is_empty() {
            None
        } else {
            Some(self.actions.remove(0))
        }
    }
    fn next_deadline(&self) -> Option<Millis> {
        None
    }
    fn status(&self) -> Status {
        Status {
            id: self.id,
            role: Role::Looking,
            leader: None,
            serving: false,
            accepted_epoch: 0,
            current_epoch: 0,
            last_logged: Zxid::ZERO,
            last_committed: Zxid::ZERO,
            last_applied: Zxid::ZERO,
            synced_followers: Vec::new(),
            outstanding: 0,
            election_round: 0,
            tree_digest: 0,
            znode_count: 1,
            session_count: 0,
        }
    }
    fn tree(&self) -> &ZTree {
        &self.tree
    }
    fn changes(&self) -> (imbl::Vector<crate::ztree::WatchEvent>, Zxid) {
        (imbl::Vector::new(), Zxid::ZERO)
    }
}

struct Node {
    handle: Handle,
    seen: Receiver<Input<PendingWrite>>,
    thread: Option<JoinHandle<Result<(), LoopError>>>,
    peer_addr: SocketAddr,
}

impl Node {
    fn start(id: PeerId, servers: &[ServerAddr], cluster: &str) -> Node {
        Node::start_with(id, servers, cluster, None)
    }

    /// A node with the ensemble secret `secret`, if any.
    fn start_with(
        id: PeerId,
        servers: &[ServerAddr],
        cluster: &str,
        secret: Option<&[u8]>,
    ) -> Node {
        let me = servers.iter().find(|s| s.id == id).unwrap();
        let std_listener = std::net::TcpListener::bind(me.peer).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let listener = mio::net::TcpListener::from_std(std_listener);
        let mut config = Config::with_servers(id, servers.to_vec(), "/nonexistent".into());
        config.cluster = cluster.to_string();
        config.security.peer_secret = secret.map(crate::secrets::Secret::from_bytes);
        let config = Arc::new(config);
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).unwrap());
        let (tx, msgs) = crossbeam_channel::bounded(64);
        let (store_cmds, _cmds_rx) = unbounded();
        let (_events_tx, store_events) = unbounded();
        let (seen_tx, seen) = unbounded();
        let machine = Scripted {
            id,
            tree: ZTree::default(),
            seen: seen_tx,
            answered: 0,
            actions: Vec::new(),
        };
        let view = Arc::new(RwLock::new(Arc::new(View::new(
            ZTree::default(),
            machine.status(),
            config.clone(),
        ))));
        let (published_tx, published) = crossbeam_channel::bounded(1);
        let applied = Arc::new(crate::channels::Applied::default());
        let rung = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setup = LoopSetup {
            config,
            poll,
            listener,
            msgs,
            store_cmds,
            store_events,
            view: view.clone(),
            waker: waker.clone(),
            rung: rung.clone(),
            published: published_tx,
            doorbells: Vec::new(),
            applied: applied.clone(),
        };
        let event_loop = EventLoop::new(machine, setup);
        let thread = std::thread::spawn(move || {
            let _keep = (_cmds_rx, _events_tx);
            event_loop.run()
        });
        Node {
            handle: Handle {
                view,
                tx,
                waker,
                rung,
                published,
                applied,
                client_port: Default::default(),
            },
            seen,
            thread: Some(thread),
            peer_addr: me.peer,
        }
    }

    /// The next input matching `pred`, skipping others; panics after 10 s.
    fn expect(
        &self,
        what: &str,
        pred: impl Fn(&Input<PendingWrite>) -> bool,
    ) -> Input<PendingWrite> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(i) if pred(&i) => return i,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    fn stop(&mut self) {
        self.handle.tx.send(LoopMsg::Shutdown).unwrap();
        self.handle.waker.wake().unwrap();
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.handle.tx.send(LoopMsg::Shutdown);
            let _ = self.handle.waker.wake();
        }
    }
}

/// `n` members on free 127.0.0.1 ports (bound once to learn them, then released).
fn members(n: u64) -> Vec<ServerAddr> {
    (1..=n)
        .map(|id| {
            let free = || {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
            };
            ServerAddr {
                id,
                http: free(),
                peer: free(),
            }
        })
        .collect()
}

fn is_up(peer: PeerId) -> impl Fn(&Input<PendingWrite>) -> bool {
    move |i| matches!(i, Input::PeerUp { peer: p } if *p == peer)
}

fn is_ping_from(peer: PeerId) -> impl Fn(&Input<PendingWrite>) -> bool {
    move |i| matches!(i, Input::Peer { from, msg: PeerMsg::Ping { zxid } } if *from == peer && zxid.0 == peer)
}

/// Sends `bytes` on a fresh connection and returns everything read until the server
/// closes it.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => out,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => out,
        Err(e) => panic!("server did not close the connection: {e}"),
    }
}

fn hello(id: PeerId, cluster: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(
        &PeerMsg::Hello {
            server_id: id,
            cluster: cluster.to_string(),
        },
        &mut out,
    );
    out
}

/// The same frame claiming protocol version 2 (byte 2 of the header).
fn wrong_version(mut frame: Vec<u8>) -> Vec<u8> {
    frame[2] = crate::wire::VERSION + 1;
    frame
}

#[test]
fn higher_id_dials_and_both_sides_see_peer_up_then_messages() {
    let servers = members(3);
    let nodes: Vec<Node> = (1..=3).map(|id| Node::start(id, &servers, "zw")).collect();
    for (i, node) in nodes.iter().enumerate() {
        let me = i as u64 + 1;
        let mut missing: Vec<(PeerId, bool)> = (1..=3)
            .filter(|&o| o != me)
            .flat_map(|o| [(o, true), (o, false)])
            .collect();
        while !missing.is_empty() {
            let input = node.expect("peer up and ping from every other server", |_| true);
            // PeerUp must come before that peer's first message.
            if let Input::Peer { from, .. } = input {
                assert!(
                    !missing.contains(&(from, true)),
                    "message from {from} before its PeerUp"
                );
            }
            missing.retain(|&(o, up)| {
                !(if up {
                    is_up(o)(&input)
                } else {
                    is_ping_from(o)(&input)
                })
            });
        }
    }
}

#[test]
fn peer_restart_gives_peer_down_then_reconnects() {
    let servers = members(2);
    let mut n1 = Node::start(1, &servers, "zw");
    let n2 = Node::start(2, &servers, "zw");
    n2.expect("peer 1 up", is_up(1));
    n1.stop();
    n2.expect("peer 1 down", |i| matches!(i, Input::PeerDown { peer: 1 }));
    let n1 = Node::start(1, &servers, "zw");
    n2.expect("peer 1 up again", is_up(1));
    n1.expect("peer 2 up", is_up(2));
    n2.expect("ping from the new peer 1", is_ping_from(1));
}

#[test]
fn wrong_cluster_unknown_id_and_lower_id_hellos_are_refused() {
    let servers = members(2);
    let n1 = Node::start(1, &servers, "zw");
    let n2 = Node::start(2, &servers, "zw");
    n1.expect("peer 2 up", is_up(2));
    for (addr, bytes, why) in [
        (n1.peer_addr, hello(2, "other"), "wrong cluster"),
        (n1.peer_addr, hello(9, "zw"), "unknown id"),
        (
            n2.peer_addr,
            hello(1, "zw"),
            "lower id dialing a higher one",
        ),
        (n1.peer_addr, hello(1, "zw"), "our own id"),
        (
            n1.peer_addr,
            wrong_version(hello(2, "zw")),
            "another protocol version",
        ),
    ] {
        assert!(
            exchange(addr, &bytes).is_empty(),
            "{why}: the server answered instead of closing"
        );
    }
    // The real link between 1 and 2 was not disturbed.
    assert!(n1
        .seen
        .try_iter()
        .all(|i| !matches!(i, Input::PeerDown { .. })));
}

#[test]
fn garbage_closes_only_that_connection() {
    let servers = members(2);
    let n1 = Node::start(1, &servers, "zw");
    let n2 = Node::start(2, &servers, "zw");
    n1.expect("peer 2 up", is_up(2));
    n2.expect("peer 1 up", is_up(1));
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(exchange(n1.peer_addr, &garbage).is_empty());
    assert!(exchange(n1.peer_addr, b"GET / HTTP/1.1\r\n\r\n").is_empty());
    assert_eq!(exchange(n1.peer_addr, b"ruok"), b"imok");
    assert!(n1
        .seen
        .try_iter()
        .all(|i| !matches!(i, Input::PeerDown { .. })));
    assert!(n2
        .seen
        .try_iter()
        .all(|i| !matches!(i, Input::PeerDown { .. })));
}

#[test]
fn four_letter_words_answer_on_the_peer_port() {
    let servers = members(1);
    let n1 = Node::start(1, &servers, "zw");
    assert_eq!(exchange(n1.peer_addr, b"ruok\n"), b"imok");
    let srvr = String::from_utf8(exchange(n1.peer_addr, b"srvr")).unwrap();
    assert!(
        srvr.starts_with("ZooWeeper version: 0.1.0\n") && srvr.contains("Mode: looking"),
        "{srvr}"
    );
    let mntr = String::from_utf8(exchange(n1.peer_addr, b"mntr")).unwrap();
    assert!(mntr.contains("zk_server_state\tlooking\n"), "{mntr}");
    let conf = String::from_utf8(exchange(n1.peer_addr, b"conf")).unwrap();
    assert!(conf.contains("cluster=zw"), "{conf}");
}

#[test]
fn client_writes_are_answered_and_counted() {
    let servers = members(1);
    let n1 = Node::start(1, &servers, "zw");
    let op = TxnOp::Delete {
        path: "/a".to_string(),
        expected_version: None,
    };
    let rx = n1.handle.submit(op).expect("queue has room");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap().1,
        Ok(OpOk::Deleted)
    );
    // The loop answers this after the batch that replied, so that batch's view is out.
    assert_eq!(exchange(n1.peer_addr, b"ruok"), b"imok");
    assert_eq!(n1.handle.view().metrics.writes_answered, 1);
}

// Peer authentication (wire-spec.md section 3): the test plays server 2 dialing server 1
// over a raw socket, with or without the secret.

const SECRET: &[u8] = b"0123456789abcdef-ensemble-secret";

/// A raw connection that reads whole frames.
struct RawPeer {
    s: TcpStream,
    dec: crate::wire::FrameDecoder,
}

impl RawPeer {
    fn connect(addr: SocketAddr) -> RawPeer {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawPeer {
            s,
            dec: crate::wire::FrameDecoder::new(),
        }
    }

    fn send(&mut self, msg: &PeerMsg) {
        let mut out = Vec::new();
        encode_frame(msg, &mut out);
        self.s.write_all(&out).unwrap();
    }

    /// The next frame, or `None` once the server closed the connection.
    fn next(&mut self) -> Option<PeerMsg> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(m) = self.dec.next_msg().expect("the server sends valid frames") {
                return Some(m);
            }
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.dec.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("the server neither answered nor closed: {e}"),
            }
        }
    }

    /// Reads until the server closes; panics if it sends a frame meanwhile.
    fn expect_closed(&mut self, why: &str) {
        if let Some(m) = self.next() {
            panic!("{why}: expected the connection closed, got {}", m.name());
        }
    }
}

/// The transcript of a connection that server 2 dialed to server 1.
fn transcript<'a>(nd: &'a [u8; 32], na: &'a [u8; 32]) -> crate::wire::auth::Transcript<'a> {
    crate::wire::auth::Transcript {
        cluster: "zw",
        dialer: 2,
        acceptor: 1,
        dialer_nonce: nd,
        acceptor_nonce: na,
    }
}

/// Dials server 1 as server 2 with nonce `nd`; returns the server's nonce after checking
/// that it answered HELLO, AUTHCHALLENGE and a proof made with [`SECRET`].
fn open_as_server_2(n1: &Node, nd: [u8; 32]) -> (RawPeer, [u8; 32]) {
    use crate::wire::auth::Direction;
    let mut p = RawPeer::connect(n1.peer_addr);
    p.send(&PeerMsg::Hello {
        server_id: 2,
        cluster: "zw".into(),
    });
    p.send(&PeerMsg::AuthChallenge { nonce: nd });
    assert!(matches!(
        p.next(),
        Some(PeerMsg::Hello { server_id: 1, .. })
    ));
    let Some(PeerMsg::AuthChallenge { nonce: na }) = p.next() else {
        panic!("expected AUTHCHALLENGE after HELLO");
    };
    let Some(PeerMsg::AuthProof { mac }) = p.next() else {
        panic!("expected AUTHPROOF");
    };
    assert!(
        transcript(&nd, &na).verify(SECRET, Direction::FromAcceptor, &mac),
        "server 1's proof does not verify with the secret"
    );
    (p, na)
}

fn no_peer_up(node: &Node) -> bool {
    node.seen
        .try_iter()
        .all(|i| !matches!(i, Input::PeerUp { .. } | Input::Peer { .. }))
}

#[test]
fn peers_with_the_same_secret_authenticate_and_come_up() {
    let servers = members(3);
    let nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start_with(id, &servers, "zw", Some(SECRET)))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        let me = i as u64 + 1;
        let mut missing: Vec<PeerId> = (1..=3).filter(|&o| o != me).collect();
        let mut pinged = false;
        while !missing.is_empty() || (me == 1 && !pinged) {
            let input = node.expect("every other peer up, authenticated", |_| true);
            missing.retain(|&o| !is_up(o)(&input));
            pinged |= is_ping_from(3)(&input);
        }
    }
}

#[test]
fn a_correct_proof_brings_the_peer_up_and_frames_flow() {
    use crate::wire::auth::Direction;
    let servers = members(2);
    // Server 2 is played by the test: its address is never dialed (1 dials nobody).
    let n1 = Node::start_with(1, &servers, "zw", Some(SECRET));
    let nd = [7u8; 32];
    let (mut p, na) = open_as_server_2(&n1, nd);
    let mac = transcript(&nd, &na).proof(SECRET, Direction::FromDialer);
    p.send(&PeerMsg::AuthProof { mac });
    n1.expect("server 2 up after its proof", is_up(2));
    // The scripted machine greets the new peer with a PING.
    assert!(matches!(p.next(), Some(PeerMsg::Ping { zxid }) if zxid == Zxid(1)));
    p.send(&PeerMsg::Ping { zxid: Zxid(2) });
    n1.expect("a frame from the authenticated peer", is_ping_from(2));
}

#[test]
fn a_wrong_secret_is_refused_and_the_peer_never_comes_up() {
    use crate::wire::auth::Direction;
    let servers = members(2);
    let n1 = Node::start_with(1, &servers, "zw", Some(SECRET));
    let nd = [9u8; 32];
    let (mut p, na) = open_as_server_2(&n1, nd);
    let mac = transcript(&nd, &na).proof(b"another-secret-of-enough-bytes", Direction::FromDialer);
    p.send(&PeerMsg::AuthProof { mac });
    p.expect_closed("a wrong proof");
    // A proof that only swaps the direction (the server's own proof reflected) fails too.
    let (mut p, na) = open_as_server_2(&n1, nd);
    let reflected = transcript(&nd, &na).proof(SECRET, Direction::FromAcceptor);
    p.send(&PeerMsg::AuthProof { mac: reflected });
    p.expect_closed("a reflected proof");
    assert!(no_peer_up(&n1), "a peer came up without a valid proof");
}

#[test]
fn a_replayed_proof_from_an_earlier_connection_is_refused() {
    use crate::wire::auth::Direction;
    let servers = members(2);
    let n1 = Node::start_with(1, &servers, "zw", Some(SECRET));
    let nd = [3u8; 32];
    // A genuine exchange, recorded (here by computing what server 2 sent).
    let (mut p, na1) = open_as_server_2(&n1, nd);
    let recorded = transcript(&nd, &na1).proof(SECRET, Direction::FromDialer);
    p.send(&PeerMsg::AuthProof { mac: recorded });
    n1.expect("the genuine server 2 up", is_up(2));
    drop(p);
    n1.expect("server 2 down", |i| {
        matches!(i, Input::PeerDown { peer: 2 })
    });
    // An attacker without the secret replays every byte server 2 sent.
    let (mut p, na2) = open_as_server_2(&n1, nd);
    assert_ne!(na1, na2, "the server reused its nonce");
    p.send(&PeerMsg::AuthProof { mac: recorded });
    p.expect_closed("a replayed proof");
    assert!(no_peer_up(&n1), "the replayed proof brought a peer up");
}

#[test]
fn truncated_misordered_and_garbage_auth_frames_close_only_that_connection() {
    let servers = members(2);
    let n1 = Node::start_with(1, &servers, "zw", Some(SECRET));
    let mut h = hello(2, "zw");
    // AUTHCHALLENGE with a 16-byte payload: malformed.
    let mut short = Vec::new();
    encode_frame(&PeerMsg::AuthChallenge { nonce: [1; 32] }, &mut short);
    short.truncate(crate::wire::HEADER_BYTES + 16);
    short[4..8].copy_from_slice(&16u32.to_be_bytes());
    let crc = crc32fast::hash(&short[crate::wire::HEADER_BYTES..]);
    short[8..12].copy_from_slice(&crc.to_be_bytes());
    h.extend_from_slice(&short);
    exchange(n1.peer_addr, &h);
    // A frame cut in the middle, then EOF.
    let mut cut = hello(2, "zw");
    let mut ch = Vec::new();
    encode_frame(&PeerMsg::AuthChallenge { nonce: [2; 32] }, &mut ch);
    cut.extend_from_slice(&ch[..20]);
    exchange(n1.peer_addr, &cut);
    // AUTHPROOF before AUTHCHALLENGE; a PING where authentication was due.
    for early in [
        PeerMsg::AuthProof { mac: [0; 32] },
        PeerMsg::Ping { zxid: Zxid(1) },
    ] {
        let mut p = RawPeer::connect(n1.peer_addr);
        p.send(&PeerMsg::Hello {
            server_id: 2,
            cluster: "zw".into(),
        });
        assert!(matches!(p.next(), Some(PeerMsg::Hello { .. })));
        assert!(matches!(p.next(), Some(PeerMsg::AuthChallenge { .. })));
        p.send(&early);
        p.expect_closed(early.name());
    }
    // Random bytes after HELLO.
    let mut g = hello(2, "zw");
    g.extend((0..512u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8));
    exchange(n1.peer_addr, &g);
    assert_eq!(
        exchange(n1.peer_addr, b"ruok"),
        b"imok",
        "the server still serves"
    );
    assert!(no_peer_up(&n1));
}

#[test]
fn a_server_without_a_secret_and_one_with_refuse_each_other() {
    let servers = members(2);
    // With a secret, facing a dialer that has none: HELLO alone, then a PING.
    let n1 = Node::start_with(1, &servers, "zw", Some(SECRET));
    let mut p = RawPeer::connect(n1.peer_addr);
    p.send(&PeerMsg::Hello {
        server_id: 2,
        cluster: "zw".into(),
    });
    assert!(matches!(p.next(), Some(PeerMsg::Hello { .. })));
    assert!(matches!(p.next(), Some(PeerMsg::AuthChallenge { .. })));
    p.send(&PeerMsg::Ping { zxid: Zxid(0) });
    p.expect_closed("a peer without a secret");
    assert!(no_peer_up(&n1));
    drop(n1);
    // Without a secret, facing a dialer that sends AUTHCHALLENGE: closed at that frame.
    let servers = members(2);
    let n1 = Node::start(1, &servers, "zw");
    let mut p = RawPeer::connect(n1.peer_addr);
    p.send(&PeerMsg::Hello {
        server_id: 2,
        cluster: "zw".into(),
    });
    assert!(matches!(p.next(), Some(PeerMsg::Hello { .. })));
    p.send(&PeerMsg::AuthChallenge { nonce: [5; 32] });
    loop {
        match p.next() {
            None => break,
            Some(PeerMsg::Ping { .. }) => {}
            Some(m) => panic!("unexpected {}", m.name()),
        }
    }
    n1.expect("the mixed link goes down", |i| {
        matches!(i, Input::PeerDown { peer: 2 })
    });
}
