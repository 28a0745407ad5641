//! One peer-port connection: its socket, its read side (a four-letter-word sniffer, then
//! a [`FrameDecoder`]) and its write buffer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use std::collections::VecDeque;

use crossbeam_channel::{Receiver, TryRecvError};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::fourlw;
use crate::wire::{encode_frame, FrameDecoder, PeerMsg};
use crate::zab::{Millis, PeerId};

/// Bytes read per `read` call.
pub const READ_CHUNK: usize = 64 * 1024;
/// Bytes read from one connection per wake-up before others get a turn.
pub const READ_BUDGET: usize = 4 * 1024 * 1024;

/// Where a connection is in its life.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Phase {
    /// Accepted; the first four bytes decide between a four-letter word and a HELLO.
    Sniffing,
    /// The first four bytes were this four-letter word; it awaits its answer.
    FourLetter([u8; 4]),
    /// Waiting for the other side's HELLO.
    Handshake,
    /// HELLO from `PeerId` accepted; with an ensemble secret, waiting for its
    /// AUTHCHALLENGE and AUTHPROOF (`wire-spec.md` section 3).
    Authenticating(PeerId),
    /// Handshake done: this is the link to `peer`.
    Up(PeerId),
    /// Answer queued: flush it, half-close, and drop whatever arrives until EOF.
    Closing,
}

/// How a read pass ended.
#[derive(Debug)]
pub enum ReadEnd {
    /// Drained until `WouldBlock`.
    Drained,
    /// The read budget ran out with bytes maybe still waiting: read again soon.
    More,
    /// The other side closed (`read` returned 0).
    Eof,
    /// The socket failed.
    Failed(io::Error),
}

/// One connection on the peer port (accepted or dialed).
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// The other side's address.
    pub addr: SocketAddr,
    /// Decodes frames once the connection is known not to be a four-letter word.
    pub decoder: FrameDecoder,
    /// Bytes not yet written, from `wpos` on.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Bytes seen while sniffing.
    sniff: Vec<u8>,
    /// Life phase.
    pub phase: Phase,
    /// For a dialed connection, the id we dialed.
    pub dialed: Option<PeerId>,
    /// A non-blocking connect not yet known to have completed.
    pub connecting: bool,
    /// When the connection was opened (loop clock).
    pub opened_ms: Millis,
    writable_interest: bool,
    half_closed: bool,
    /// What must follow `wbuf` in order: frames queued behind a stream, and streams.
    later: VecDeque<Later>,
    /// Bytes held in `later` (streams not counted until taken).
    later_bytes: usize,
    /// Bytes read from and written to the socket so far.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The peer-authentication exchange, when the ensemble has a secret.
    pub auth: Option<AuthState>,
}

/// Where one connection's peer authentication stands.
#[derive(Clone, Debug)]
pub struct AuthState {
    /// The nonce this side sent in its AUTHCHALLENGE.
    pub my_nonce: [u8; 32],
    /// The other side's nonce, once its AUTHCHALLENGE arrived.
    pub their_nonce: Option<[u8; 32]>,
}

/// Output that waits behind a stream (a snapshot being encoded by another thread).
enum Later {
    /// Encoded frames queued while a stream ahead of them was still being sent.
    Bytes(Vec<u8>),
    /// Encoded frames produced by another thread; done when its sender is dropped. An
    /// `Err` means the producer could not go on: the connection must close.
    Stream(Receiver<StreamItem>),
}

/// One piece of a stream: encoded frames, or why the stream cannot be completed.
pub type StreamItem = Result<Vec<u8>, String>;

/// A stream is topped up into the write buffer only while less than this is unsent, so
/// a snapshot of any size costs a bounded amount of memory on the sending side.
pub const STREAM_LOW_WATER_BYTES: usize = 4 * 1024 * 1024;

impl Conn {
    /// An accepted connection, sniffing for a four-letter word.
    pub fn accepted(stream: TcpStream, addr: SocketAddr, now: Millis) -> Conn {
        Conn::new(stream, addr, Phase::Sniffing, None, now)
    }

    /// A connection we are dialing to `peer`, with our HELLO already queued.
    pub fn dialing(
        stream: TcpStream,
        addr: SocketAddr,
        peer: PeerId,
        hello: &PeerMsg,
        now: Millis,
    ) -> Conn {
        let mut c = Conn::new(stream, addr, Phase::Handshake, Some(peer), now);
        c.connecting = true;
        c.queue(hello);
        c
    }

    fn new(
        stream: TcpStream,
        addr: SocketAddr,
        phase: Phase,
        dialed: Option<PeerId>,
        now: Millis,
    ) -> Conn {
        Conn {
            stream,
            addr,
            decoder: FrameDecoder::new(),
            wbuf: Vec::new(),
            wpos: 0,
            sniff: Vec::new(),
            phase,
            dialed,
            connecting: false,
            opened_ms: now,
            writable_interest: false,
            half_closed: false,
            later: VecDeque::new(),
            later_bytes: 0,
            bytes_in: 0,
            bytes_out: 0,
            auth: None,
        }
    }

    /// The peer id once the handshake is done.
    pub fn peer(&self) -> Option<PeerId> {
        match self.phase {
            Phase::Up(p) => Some(p),
            _ => None,
        }
    }

    /// Encodes `msg` into the write buffer (written by the next [`Conn::flush`]).
    pub fn queue(&mut self, msg: &PeerMsg) {
        if self.later.is_empty() {
            encode_frame(msg, &mut self.wbuf);
            return;
        }
        if !matches!(self.later.back(), Some(Later::Bytes(_))) {
            self.later.push_back(Later::Bytes(Vec::new()));
        }
        if let Some(Later::Bytes(b)) = self.later.back_mut() {
            let before = b.len();
            encode_frame(msg, b);
            self.later_bytes += b.len() - before;
        }
    }

    /// Sends the frames `rx` yields (until its sender is dropped) before anything queued
    /// after this call.
    pub fn queue_stream(&mut self, rx: Receiver<StreamItem>) {
        self.later.push_back(Later::Stream(rx));
    }

    /// True while a stream, or frames queued behind one, wait to be sent.
    pub fn streaming(&self) -> bool {
        !self.later.is_empty()
    }

    /// Moves waiting output into the write buffer, in order, while less than
    /// [`STREAM_LOW_WATER_BYTES`] is unsent. Returns whether anything moved.
    ///
    /// # Errors
    /// The reason a stream's producer gave for not completing it.
    pub fn pump(&mut self) -> Result<bool, String> {
        let mut moved = false;
        while self.pending_wbuf() < STREAM_LOW_WATER_BYTES {
            match self.later.front_mut() {
                None => break,
                Some(Later::Bytes(b)) => {
                    self.later_bytes -= b.len();
                    self.wbuf.extend_from_slice(b);
                    self.later.pop_front();
                    moved = true;
                }
                Some(Later::Stream(rx)) => match rx.try_recv() {
                    Ok(Ok(b)) => {
                        self.wbuf.extend_from_slice(&b);
                        moved = true;
                    }
                    Ok(Err(why)) => return Err(why),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.later.pop_front();
                    }
                },
            }
        }
        Ok(moved)
    }

    fn pending_wbuf(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Queues raw bytes (a four-letter-word answer).
    pub fn queue_bytes(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// Bytes waiting to be written.
    pub fn pending_write(&self) -> usize {
        self.pending_wbuf() + self.later_bytes
    }

    /// After a writable event on a dialed socket: `Ok(true)` once connected, `Ok(false)`
    /// while the connect is still in progress.
    ///
    /// # Errors
    /// The connect failed.
    pub fn finish_connect(&mut self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connecting = false;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes as much of the buffer as the socket takes now.
    ///
    /// # Errors
    /// The socket failed; the connection must be closed.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.connecting {
            return Ok(());
        }
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    self.bytes_out += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            if self.phase == Phase::Closing && !self.half_closed {
                self.half_closed = true;
                let _ = self.stream.shutdown(Shutdown::Write);
            }
        } else if self.wpos > self.wbuf.len() / 2 {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        Ok(())
    }

    /// Reads until `WouldBlock` (or the budget), sniffing four-letter words on accepted
    /// connections and feeding everything else to the decoder.
    pub fn read_available(&mut self, scratch: &mut [u8]) -> ReadEnd {
        let mut total = 0;
        loop {
            if total >= READ_BUDGET {
                return ReadEnd::More;
            }
            match self.stream.read(scratch) {
                Ok(0) => return ReadEnd::Eof,
                Ok(n) => {
                    total += n;
                    self.bytes_in += n as u64;
                    self.take(&scratch[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return ReadEnd::Failed(e),
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        match self.phase {
            Phase::Sniffing => {
                self.sniff.extend_from_slice(bytes);
                if self.sniff.len() >= 4 {
                    let first: [u8; 4] =
                        [self.sniff[0], self.sniff[1], self.sniff[2], self.sniff[3]];
                    if fourlw::is_word(&first) {
                        self.phase = Phase::FourLetter(first);
                    } else {
                        self.phase = Phase::Handshake;
                        self.decoder.feed(&self.sniff);
                    }
                    self.sniff = Vec::new();
                }
            }
            Phase::Handshake | Phase::Authenticating(_) | Phase::Up(_) => self.decoder.feed(bytes),
            Phase::FourLetter(_) | Phase::Closing => {}
        }
    }

    /// Sets WRITABLE interest exactly while there is something to write (or a connect to
    /// finish).
    ///
    /// # Errors
    /// Re-registration failed.
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let want = self.connecting || self.pending_wbuf() > 0;
        if want != self.writable_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.stream, token, interest)?;
            self.writable_interest = want;
        }
        Ok(())
    }

    /// Registers a new connection (with WRITABLE interest if dialing).
    ///
    /// # Errors
    /// Registration failed.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.writable_interest = self.connecting || self.pending_wbuf() > 0;
        let interest = if self.writable_interest {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        registry.register(&mut self.stream, token, interest)
    }
}
