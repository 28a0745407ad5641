//! A network that behaves like TCP between simulated servers.
//!
//! One connection per pair of servers. A connection delivers each direction in order,
//! never duplicates, and delays each message by a random time, never less than the
//! message before it on the same direction. Faults act on connections: a reset drops
//! what is in flight; a clog holds a direction's new messages until it lifts; a blocked
//! pair (partition, one-way or symmetric: TCP needs both ways) has no connection and
//! gets none until the block lifts. Which servers are alive is the cluster's business.

use std::collections::BTreeMap;

use super::rng::Rng;
use crate::zab::{Millis, PeerId};

/// An unordered pair of servers, smaller id first.
pub type Pair = (PeerId, PeerId);

/// The pair `a`, `b` in canonical order.
pub fn pair(a: PeerId, b: PeerId) -> Pair {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

/// Where a connection is in its life.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum ConnState {
    /// The handshake is under way; nothing is delivered yet.
    Connecting,
    /// Both directions deliver.
    Up,
    /// `from` crashed after writing: what it sent still arrives, then the connection ends.
    Closing {
        /// The side whose last bytes are still in flight.
        from: PeerId,
    },
}

/// One connection between a pair of servers.
#[derive(Clone, Debug)]
pub struct Conn {
    /// Unique over the whole run; a message or event for an older id is stale.
    pub id: u64,
    /// Its state.
    pub state: ConnState,
    /// Delivery time of the newest message per direction: `[lo -> hi, hi -> lo]`.
    last_delivery: [Millis; 2],
}

/// Delay ranges of the network, in ms.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Usual one-way delay, low end.
    pub min_delay: Millis,
    /// Usual one-way delay, high end.
    pub max_delay: Millis,
    /// How often (per mille) a message takes the slow path.
    pub slow_per_mille: u64,
    /// The slow path's highest delay.
    pub slow_max_delay: Millis,
    /// Time to set a connection up, low end.
    pub min_connect: Millis,
    /// Time to set a connection up, high end.
    pub max_connect: Millis,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_delay: 1,
            max_delay: 8,
            slow_per_mille: 20,
            slow_max_delay: 120,
            min_connect: 2,
            max_connect: 40,
        }
    }
}

/// The connections, blocks and clogs between servers.
#[derive(Default)]
pub struct Net {
    cfg: NetConfig,
    conns: BTreeMap<Pair, Conn>,
    blocked_until: BTreeMap<Pair, Millis>,
    clogged_until: BTreeMap<(PeerId, PeerId), Millis>,
    next_id: u64,
}

fn dir(from: PeerId, to: PeerId) -> usize {
    usize::from(from > to)
}

impl Net {
    /// A network with no connections.
    pub fn new(cfg: NetConfig) -> Net {
        Net {
            cfg,
            ..Net::default()
        }
    }

    /// The connection between `a` and `b`, if any.
    pub fn conn(&self, a: PeerId, b: PeerId) -> Option<&Conn> {
        self.conns.get(&pair(a, b))
    }

    /// Pairs whose connection is up.
    pub fn up_pairs(&self) -> Vec<Pair> {
        let up = self.conns.iter().filter(|(_, c)| c.state == ConnState::Up);
        up.map(|(p, _)| *p).collect()
    }

    /// True while a partition keeps `a` and `b` apart.
    pub fn is_blocked(&self, a: PeerId, b: PeerId, now: Millis) -> bool {
        self.blocked_until
            .get(&pair(a, b))
            .is_some_and(|&until| until > now)
    }

    /// Number of pairs kept apart at `now`.
    pub fn blocked_count(&self, now: Millis) -> usize {
        self.blocked_until.values().filter(|&&u| u > now).count()
    }

    /// Keeps `a` and `b` apart until `until` (extending any longer block): no new
    /// connection between them until then. Drops their connection and returns its id, so
    /// the caller can tell both ends.
    pub fn block(&mut self, a: PeerId, b: PeerId, until: Millis) -> Option<u64> {
        let e = self.blocked_until.entry(pair(a, b)).or_insert(until);
        *e = (*e).max(until);
        self.reset(a, b)
    }

    /// Keeps `a` and `b` apart until `until` without telling anyone: their connection
    /// stays up but carries nothing until then (TCP retransmits what was held, in
    /// order, when the partition lifts), so the ends notice only by their own timeouts;
    /// and no new connection forms meanwhile.
    pub fn silence(&mut self, a: PeerId, b: PeerId, until: Millis) {
        let e = self.blocked_until.entry(pair(a, b)).or_insert(until);
        *e = (*e).max(until);
        self.clog(a, b, until);
        self.clog(b, a, until);
    }

    /// Lifts every block and clog.
    pub fn heal_all(&mut self) {
        self.blocked_until.clear();
        self.clogged_until.clear();
    }

    /// Forgets blocks that have expired by `now`.
    pub fn expire_blocks(&mut self, now: Millis) {
        self.blocked_until.retain(|_, until| *until > now);
    }

    /// Holds messages sent `from` -> `to` until `until`.
    pub fn clog(&mut self, from: PeerId, to: PeerId, until: Millis) {
        let e = self.clogged_until.entry((from, to)).or_insert(until);
        *e = (*e).max(until);
    }

    /// Starts connecting `a` and `b` unless they are connected, connecting or blocked.
    /// Returns the new connection's id and when its handshake completes.
    pub fn open(
        &mut self,
        a: PeerId,
        b: PeerId,
        now: Millis,
        rng: &mut Rng,
    ) -> Option<(u64, Millis)> {
        let p = pair(a, b);
        if a == b || self.conns.contains_key(&p) || self.is_blocked(a, b, now) {
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        let conn = Conn {
            id,
            state: ConnState::Connecting,
            last_delivery: [now, now],
        };
        self.conns.insert(p, conn);
        Some((
            id,
            now + rng.range(self.cfg.min_connect, self.cfg.max_connect),
        ))
    }

    /// Completes the handshake of connection `id`; false if it is gone or blocked.
    pub fn establish(&mut self, p: Pair, id: u64, now: Millis) -> bool {
        let blocked = self.is_blocked(p.0, p.1, now);
        match self.conns.get_mut(&p) {
            Some(c) if c.id == id && c.state == ConnState::Connecting && !blocked => {
                c.state = ConnState::Up;
                c.last_delivery = [now, now];
                true
            }
            Some(c) if c.id == id => {
                self.conns.remove(&p);
                false
            }
            _ => false,
        }
    }

    /// Sends one message `from` -> `to`: the connection's id and the delivery time, or
    /// `None` when there is no connection up (the message is dropped, as on a closed
    /// socket).
    pub fn send(
        &mut self,
        from: PeerId,
        to: PeerId,
        now: Millis,
        rng: &mut Rng,
    ) -> Option<(u64, Millis)> {
        let delay = if rng.chance(self.cfg.slow_per_mille) {
            rng.range(self.cfg.max_delay, self.cfg.slow_max_delay)
        } else {
            rng.range(self.cfg.min_delay, self.cfg.max_delay)
        };
        let clog = self.clogged_until.get(&(from, to)).copied().unwrap_or(0);
        let c = self.conns.get_mut(&pair(from, to))?;
        if c.state != ConnState::Up {
            return None;
        }
        let d = dir(from, to);
        let at = (now.max(clog) + delay).max(c.last_delivery[d]);
        c.last_delivery[d] = at;
        Some((c.id, at))
    }

    /// True when a message sent `from` -> `to` on connection `id` may still arrive.
    pub fn deliverable(&self, from: PeerId, to: PeerId, id: u64) -> bool {
        match self.conns.get(&pair(from, to)) {
            Some(c) if c.id == id => match c.state {
                ConnState::Up => true,
                ConnState::Closing { from: f } => f == from,
                ConnState::Connecting => false,
            },
            _ => false,
        }
    }

    /// Resets the connection of `a` and `b`: in-flight messages are lost. Returns its id.
    pub fn reset(&mut self, a: PeerId, b: PeerId) -> Option<u64> {
        self.conns.remove(&pair(a, b)).map(|c| c.id)
    }

    /// `crashed` died after writing to `other`: its in-flight messages still arrive and
    /// the connection ends after the last one. Returns the id and that time; a connection
    /// that was not up is simply dropped (`None`).
    pub fn close_after_flush(
        &mut self,
        crashed: PeerId,
        other: PeerId,
        now: Millis,
    ) -> Option<(u64, Millis)> {
        let p = pair(crashed, other);
        let c = self.conns.get_mut(&p)?;
        if c.state != ConnState::Up {
            self.conns.remove(&p);
            return None;
        }
        c.state = ConnState::Closing { from: crashed };
        Some((c.id, c.last_delivery[dir(crashed, other)].max(now)))
    }

    /// Ends connection `id` of pair `p` if it is still the current one.
    pub fn finish_close(&mut self, p: Pair, id: u64) -> bool {
        if self.conns.get(&p).is_some_and(|c| c.id == id) {
            self.conns.remove(&p);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(net: &mut Net, a: PeerId, b: PeerId, rng: &mut Rng) -> u64 {
        let (id, at) = net.open(a, b, 0, rng).unwrap();
        assert!(net.establish(pair(a, b), id, at));
        id
    }

    #[test]
    fn each_direction_delivers_in_send_order() {
        let mut rng = Rng::new(1);
        let mut net = Net::new(NetConfig::default());
        up(&mut net, 1, 2, &mut rng);
        let mut last = 0;
        for now in 0..2000 {
            let (_, at) = net.send(1, 2, now / 3, &mut rng).unwrap();
            assert!(at >= last, "reordered: {at} < {last}");
            assert!(at > now / 3);
            last = at;
        }
    }

    #[test]
    fn nothing_is_sent_before_the_handshake_or_after_a_reset() {
        let mut rng = Rng::new(2);
        let mut net = Net::new(NetConfig::default());
        let (id, at) = net.open(1, 2, 0, &mut rng).unwrap();
        assert_eq!(net.send(1, 2, 0, &mut rng), None);
        assert!(
            net.open(2, 1, 0, &mut rng).is_none(),
            "one connection per pair"
        );
        assert!(net.establish((1, 2), id, at));
        let (sent_on, _) = net.send(2, 1, at, &mut rng).unwrap();
        assert_eq!(net.reset(1, 2), Some(id));
        assert!(
            !net.deliverable(2, 1, sent_on),
            "in-flight messages die with a reset"
        );
        assert_eq!(net.send(1, 2, at, &mut rng), None);
        let id2 = up(&mut net, 1, 2, &mut rng);
        assert_ne!(id, id2);
        assert!(
            !net.deliverable(2, 1, id),
            "old messages stay dead on a new connection"
        );
    }

    #[test]
    fn a_blocked_pair_cannot_connect_until_the_block_lifts() {
        let mut rng = Rng::new(3);
        let mut net = Net::new(NetConfig::default());
        let id = up(&mut net, 1, 3, &mut rng);
        assert_eq!(net.block(3, 1, 100), Some(id));
        assert!(net.conn(1, 3).is_none());
        assert!(net.open(1, 3, 50, &mut rng).is_none());
        assert!(net.is_blocked(1, 3, 99));
        assert!(!net.is_blocked(1, 3, 100));
        let (id2, at) = net.open(1, 3, 100, &mut rng).unwrap();
        assert!(net.establish((1, 3), id2, at));
    }

    #[test]
    fn a_silent_partition_holds_both_directions_and_refuses_new_connections() {
        let mut rng = Rng::new(7);
        let mut net = Net::new(NetConfig::default());
        let id = up(&mut net, 1, 2, &mut rng);
        net.silence(2, 1, 1000);
        assert_eq!(net.conn(1, 2).map(|c| c.id), Some(id), "nobody is told");
        let (_, a) = net.send(1, 2, 10, &mut rng).unwrap();
        let (_, b) = net.send(2, 1, 10, &mut rng).unwrap();
        assert!(a > 1000 && b > 1000);
        net.reset(1, 2);
        assert!(net.open(1, 2, 500, &mut rng).is_none());
        assert!(net.open(1, 2, 1000, &mut rng).is_some());
    }

    #[test]
    fn a_block_during_the_handshake_stops_it() {
        let mut rng = Rng::new(4);
        let mut net = Net::new(NetConfig::default());
        let (id, at) = net.open(1, 2, 0, &mut rng).unwrap();
        net.blocked_until.insert((1, 2), at + 10);
        assert!(!net.establish((1, 2), id, at));
        assert!(net.conn(1, 2).is_none());
    }

    #[test]
    fn a_clog_holds_new_messages_until_it_lifts_and_keeps_order() {
        let mut rng = Rng::new(5);
        let mut net = Net::new(NetConfig::default());
        up(&mut net, 1, 2, &mut rng);
        net.clog(1, 2, 500);
        let (_, a) = net.send(1, 2, 10, &mut rng).unwrap();
        let (_, b) = net.send(1, 2, 11, &mut rng).unwrap();
        assert!(a > 500 && b >= a);
        let (_, back) = net.send(2, 1, 10, &mut rng).unwrap();
        assert!(back < 500, "a clog holds one direction only");
    }

    #[test]
    fn a_crashed_sides_last_messages_arrive_then_the_connection_ends() {
        let mut rng = Rng::new(6);
        let mut net = Net::new(NetConfig::default());
        let id = up(&mut net, 1, 2, &mut rng);
        let (_, last) = net.send(1, 2, 100, &mut rng).unwrap();
        let (_, back) = net.send(2, 1, 100, &mut rng).unwrap();
        let (cid, close_at) = net.close_after_flush(1, 2, 100).unwrap();
        assert_eq!(cid, id);
        assert!(close_at >= last && back > 0);
        assert!(net.deliverable(1, 2, id));
        assert!(!net.deliverable(2, 1, id), "nothing reaches the dead side");
        assert_eq!(net.send(2, 1, 101, &mut rng), None);
        assert!(net.finish_close((1, 2), id));
        assert!(!net.deliverable(1, 2, id));
    }
}
