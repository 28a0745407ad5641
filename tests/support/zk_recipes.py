"""kazoo's recipes, a failover and a plain write/read against a ZooWeeper ensemble.

Usage:
  python3 zk_recipes.py write-read HOST:PORT HOST:PORT
      writes through the first server, reads through the second
  python3 zk_recipes.py recipes HOST:PORT HOST:PORT HOST:PORT
      one client per server; Lock, Counter, Election, Barrier, DoubleBarrier, Queue,
      LockingQueue, Party, SetPartitioner, TreeCache
  python3 zk_recipes.py failover HOST:PORT,HOST:PORT,HOST:PORT
      prints "on PORT", waits for a line on stdin (the test kills that server), then
      checks the session, its ephemeral and its watches on another server

Each check prints one line; tests/zk_recipes.rs and tests/zk_config.rs compare them.
"""
import sys
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.cache import TreeCache, TreeEvent
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock
from kazoo.recipe.partitioner import SetPartitioner
from kazoo.recipe.party import Party
from kazoo.recipe.queue import LockingQueue, Queue

WAIT = 60  # seconds any one step may take on a loaded machine


def out(*words):
    print(*words, flush=True)


def client(hosts):
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=WAIT)
    return zk


def wait_until(what, done):
    deadline = time.monotonic() + WAIT
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def run_threads(fns):
    errors = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:  # reported, so the test fails with the cause
            errors.append(repr(e))

    threads = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
        if t.is_alive():
            errors.append("a thread did not finish")
    if errors:
        raise AssertionError("; ".join(errors))


def write_read(first, second):
    a, b = client(first), client(second)
    a.ensure_path("/cfg")
    a.set("/cfg", b"from zoo.cfg")
    b.sync("/cfg")
    out("read", b.get("/cfg")[0].decode())
    a.stop()
    b.stop()


def lock(zks):
    """Increments under the lock, from two threads per client: none is lost."""
    zks[0].ensure_path("/r/lock-count")
    zks[0].set("/r/lock-count", b"0")
    holders = [0]
    most = [0]
    guard = threading.Lock()

    def worker(zk, name):
        def run():
            for _ in range(10):
                with Lock(zk, "/r/lock", name):
                    with guard:
                        holders[0] += 1
                        most[0] = max(most[0], holders[0])
                    n = int(zk.get("/r/lock-count")[0])
                    zk.set("/r/lock-count", str(n + 1).encode())
                    with guard:
                        holders[0] -= 1
        return run

    run_threads([worker(zk, "w%d-%d" % (i, j)) for i, zk in enumerate(zks) for j in range(2)])
    zks[2].sync("/r/lock-count")
    out("lock", int(zks[2].get("/r/lock-count")[0]), "most holders", most[0])


def counter(zks):
    def worker(zk):
        def run():
            c = Counter(zk, "/r/counter")
            for _ in range(20):
                c += 1
        return run

    run_threads([worker(zk) for zk in zks for _ in range(2)])
    c = Counter(zks[1], "/r/counter")
    zks[1].sync("/r/counter")
    out("counter", c.value)


def election(zks):
    """Every candidate leads once, one at a time."""
    leaders = []
    leading = [0]
    most = [0]
    guard = threading.Lock()

    def worker(zk, name):
        def lead():
            with guard:
                leading[0] += 1
                most[0] = max(most[0], leading[0])
                leaders.append(name)
            time.sleep(0.05)  # hold the leadership for a while so overlaps would show
            with guard:
                leading[0] -= 1

        def run():
            Election(zk, "/r/election", name).run(lead)
        return run

    run_threads([worker(zk, "c%d" % i) for i, zk in enumerate(zks)])
    out("election", sorted(leaders), "most leaders", most[0])


def barrier(zks):
    b = Barrier(zks[0], "/r/barrier")
    b.create()
    passed = []

    def waiter(zk):
        def run():
            passed.append(Barrier(zk, "/r/barrier").wait(WAIT))
        return run

    threads = [threading.Thread(target=waiter(zk)) for zk in zks[1:]]
    for t in threads:
        t.start()
    # While the barrier stands nobody passes (a wrong server would let them through in
    # this time).
    time.sleep(0.3)
    blocked = len(passed)
    b.remove()
    for t in threads:
        t.join(WAIT)
    out("barrier blocked", blocked, "passed", passed)


def double_barrier(zks):
    entered_when = []
    guard = threading.Lock()

    def worker(zk, name):
        def run():
            db = DoubleBarrier(zk, "/r/dbarrier", 3, identifier=name)
            db.enter()
            with guard:
                entered_when.append(len(zk.get_children("/r/dbarrier")))
            db.leave()
        return run

    run_threads([worker(zk, "d%d" % i) for i, zk in enumerate(zks)])
    out("double barrier", len(entered_when), "all in", all(n >= 3 for n in entered_when))


def queues(zks):
    q = Queue(zks[0], "/r/queue")
    for i in range(30):
        Queue(zks[i % 3], "/r/queue").put(b"q%02d" % i)
    got = []
    guard = threading.Lock()

    def take(zk):
        def run():
            mine = Queue(zk, "/r/queue")
            while True:
                item = mine.get()
                if item is None:
                    return
                with guard:
                    got.append(item)
        return run

    run_threads([take(zk) for zk in zks])
    out("queue", len(got), "unique", len(set(got)), "left", len(q))

    for i in range(30):
        LockingQueue(zks[i % 3], "/r/lqueue").put(b"l%02d" % i)
    taken = []

    def consume(zk):
        def run():
            mine = LockingQueue(zk, "/r/lqueue")
            while True:
                item = mine.get(1)
                if item is None:
                    if len(mine) == 0:
                        return
                    continue
                with guard:
                    taken.append(item)
                assert mine.consume()
        return run

    run_threads([consume(zk) for zk in zks])
    out("locking queue", len(taken), "unique", len(set(taken)), "left",
        len(LockingQueue(zks[0], "/r/lqueue")))


def party(zks):
    parties = [Party(zk, "/r/party", "p%d" % i) for i, zk in enumerate(zks)]
    for p in parties:
        p.join()
    view = Party(zks[0], "/r/party")
    zks[0].sync("/r/party")
    members = sorted(view)
    parties[2].leave()
    zks[0].sync("/r/party")
    out("party", members, "after a leave", len(view))


def partitioner(zks):
    """Three members split 12 items: together they hold each exactly once."""
    items = list(range(12))
    # Distinct identifiers: the default (host and pid) is the same for every client of
    # this process, and equal identifiers all take the first share.
    parts = [SetPartitioner(zk, "/r/partition", items, time_boundary=0.3, identifier="s%d" % i)
             for i, zk in enumerate(zks)]
    deadline = time.monotonic() + WAIT
    while not all(p.acquired for p in parts):
        if time.monotonic() > deadline:
            raise AssertionError("partitions not acquired")
        for p in parts:
            if p.failed:
                raise AssertionError("a partitioner failed")
            if p.release:
                p.release_set()
            elif p.allocating:
                p.wait_for_acquire(0.1)
    owned = [set(p) for p in parts]
    union = set().union(*owned)
    disjoint = sum(len(o) for o in owned) == len(union)
    out("partitioner covers", sorted(union) == items, "disjoint", disjoint,
        "each has some", all(owned))
    for p in parts:
        p.finish()


def tree_cache(zks):
    zks[0].ensure_path("/r/tree")
    events = []
    cache = TreeCache(zks[0], "/r/tree")

    def listener(ev):
        if ev.event_type in (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED,
                             TreeEvent.NODE_REMOVED) and ev.event_data is not None:
            events.append((ev.event_type, ev.event_data.path, ev.event_data.data))

    cache.listen(listener)
    cache.start()
    wait_until("the cache's root", lambda: any(e[1] == "/r/tree" for e in events))
    # One change at a time, each seen before the next (the cache's events for changes
    # close together may come in either order, as it re-reads a node to report it).
    steps = [
        (lambda: zks[1].create("/r/tree/a", b"1"), TreeEvent.NODE_ADDED, "/r/tree/a"),
        (lambda: zks[2].create("/r/tree/a/b", b"x"), TreeEvent.NODE_ADDED, "/r/tree/a/b"),
        (lambda: zks[1].set("/r/tree/a", b"2"), TreeEvent.NODE_UPDATED, "/r/tree/a"),
        (lambda: zks[2].delete("/r/tree/a/b"), TreeEvent.NODE_REMOVED, "/r/tree/a/b"),
    ]
    for change, kind, path in steps:
        change()
        wait_until("%s %s" % (kind, path),
                   lambda: any(e[0] == kind and e[1] == path for e in events))
    names = {TreeEvent.NODE_ADDED: "added", TreeEvent.NODE_UPDATED: "updated",
             TreeEvent.NODE_REMOVED: "removed"}
    seen_events = ["%s %s %s" % (names[t], p, d.decode()) for t, p, d in events
                   if p != "/r/tree"]
    out("tree cache", "; ".join(seen_events))
    data = cache.get_data("/r/tree/a")
    out("tree cache data", data.data.decode(), "children", sorted(cache.get_children("/r/tree")))
    cache.close()


def recipes(hosts):
    zks = [client(h) for h in hosts]
    zks[0].ensure_path("/r")
    lock(zks)
    counter(zks)
    election(zks)
    barrier(zks)
    double_barrier(zks)
    queues(zks)
    party(zks)
    partitioner(zks)
    tree_cache(zks)
    for zk in zks:
        zk.stop()
        zk.close()
    out("done")


def failover(hosts):
    zk = client(hosts)
    states = []
    zk.add_listener(lambda s: states.append(s))
    session = zk.client_id[0]
    zk.ensure_path("/f")
    zk.create("/f/eph", b"mine", ephemeral=True)
    zk.create("/f/watched", b"0")
    # One-shot watches: kazoo drops them on a disconnection and calls them with a NONE
    # event. DataWatch and ChildrenWatch re-arm themselves on the new server.
    one_shot = []
    zk.get("/f/watched", watch=lambda ev: one_shot.append((ev.type, ev.path)))
    values = []
    children = []
    zk.DataWatch("/f/watched", lambda data, stat: values.append(data))
    zk.ChildrenWatch("/f", lambda kids: children.append(sorted(kids)))
    port = zk._connection._socket.getpeername()[1]
    out("on", port)
    sys.stdin.readline()  # the test has SIGKILLed that server
    # Another client, on the servers left, changes what the first one watches while it
    # reconnects.
    others = ",".join(h for h in hosts.split(",") if not h.endswith(":%d" % port))
    other = client(others)
    other.set("/f/watched", b"1")
    other.create("/f/new", b"")
    wait_until("reconnection", lambda: zk.connected and KazooState.SUSPENDED in states
               and states[-1] == KazooState.CONNECTED)
    new_port = zk._connection._socket.getpeername()[1]
    out("moved", new_port != port)
    out("same session", zk.client_id[0] == session, "lost", KazooState.LOST in states)
    zk.sync("/f")
    node = zk.exists("/f/eph")
    out("ephemeral kept", node is not None and node.ephemeralOwner == session)
    other.sync("/f")
    out("others see it", other.exists("/f/eph") is not None)
    out("one-shot watch", one_shot)
    wait_until("the data watch", lambda: values and values[-1] == b"1")
    wait_until("the children watch", lambda: children and "new" in children[-1])
    # Watches armed on the new server fire too.
    other.set("/f/watched", b"2")
    other.delete("/f/new")
    wait_until("the data watch again", lambda: values[-1] == b"2")
    wait_until("the children watch again", lambda: "new" not in children[-1])
    seen = []
    for v in values:
        if not seen or seen[-1] != v:
            seen.append(v)
    out("data watch", [v.decode() for v in seen])
    out("children watch", children[-1])
    zk.stop()
    zk.close()
    other.sync("/f")
    out("ephemeral gone after close", other.exists("/f/eph") is None)
    other.stop()
    other.close()
    out("done")


def main():
    mode = sys.argv[1]
    if mode == "write-read":
        write_read(sys.argv[2], sys.argv[3])
    elif mode == "recipes":
        recipes(sys.argv[2:5])
    elif mode == "failover":
        failover(sys.argv[2])
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
