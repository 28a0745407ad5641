"""Drives ZooWeeper's ZooKeeper client port with kazoo, printing one line per check.

Usage: python3 zk_kazoo.py CLIENT_HOST:PORT OTHER_SERVER_HTTP_URL
tests/zk_client.rs runs it and compares the lines.
"""
import json
import sys
import threading
import urllib.error
import urllib.request

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, ReconfigDisabledError, RuntimeInconsistency

hosts, other_http = sys.argv[1], sys.argv[2]


def http_znode(path):
    url = "%s/znodes%s?sync=true" % (other_http, path)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return e.code


zk = KazooClient(hosts=hosts, timeout=10)
zk.start(timeout=20)
session = zk.client_id[0]
print("connected", session != 0)

zk.create("/zk-t", b"one")
print("get", zk.get("/zk-t")[0].decode())
stat = zk.set("/zk-t", b"two")
print("set version", stat.version)
print("get", zk.get("/zk-t")[0].decode())
zk.create("/zk-t/gone", b"")
zk.delete("/zk-t/gone")
print("deleted", zk.exists("/zk-t/gone") is None)

eph = zk.create("/zk-t/e-", b"x", ephemeral=True, sequence=True)
print("ephemeral", eph)
print("children", ",".join(zk.get_children("/zk-t")))
print("ephemeral owner is the session", zk.exists(eph).ephemeralOwner == session)

fired = threading.Event()
events = []


def watcher(ev):
    events.append((ev.type, ev.path))
    fired.set()


print("exists before", zk.exists("/zk-w", watch=watcher))
zk.create("/zk-w", b"")
fired.wait(10)
print("watch", events)

t = zk.transaction()
t.check("/zk-t", 99)
t.create("/zk-t/never", b"")
results = t.commit()
print(
    "multi",
    isinstance(results[0], BadVersionError),
    isinstance(results[1], RuntimeInconsistency),
    zk.exists("/zk-t/never") is None,
)
t = zk.transaction()
t.check("/zk-t", 1)
t.create("/zk-t/multi", b"")
print("multi ok", t.commit())

# Pipelined: 50 creates and then a read, all sent before any answer; the answers come in
# order and the read sees every create before it.
zk.create("/zk-p", b"")
asyncs = [zk.create_async("/zk-p/n%02d" % i, b"") for i in range(50)]
kids = zk.get_children_async("/zk-p")
created = [a.get(timeout=20) for a in asyncs]
print("pipelined", created == ["/zk-p/n%02d" % i for i in range(50)], len(kids.get(timeout=20)))

node = http_znode(eph)
print("http sees the ephemeral", isinstance(node, dict) and node["stat"]["ephemeralOwner"] == session)

# Dynamic reconfiguration is disabled, as on a ZooKeeper without reconfigEnabled.
try:
    zk.reconfig(joining=None, leaving=None, new_members="server.9=127.0.0.1:1:2")
    print("reconfig disabled False")
except ReconfigDisabledError:
    print("reconfig disabled True")

zk.stop()
zk.close()
print("http after close", http_znode(eph))
print("done")
