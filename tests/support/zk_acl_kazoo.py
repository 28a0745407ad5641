"""Drives ZooWeeper's ACLs and authentication with kazoo, printing one line per check.

Usage: python3 zk_acl_kazoo.py HOST:PORT OTHER_HOST:PORT
tests/zk_acl.rs runs it against two servers of one ensemble and compares the lines.
"""
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    RolledBackError,
)
from kazoo.security import ACL, Id, OPEN_ACL_UNSAFE, Permissions, make_digest_acl

first, other = sys.argv[1], sys.argv[2]


def client(hosts, auth=None):
    zk = KazooClient(hosts=hosts, timeout=10, auth_data=auth)
    zk.start(timeout=20)
    return zk


def outcome(f):
    """What a call gave: ok, or the name of the error it raised."""
    try:
        f()
        return "ok"
    except Exception as e:  # the error's name is the check
        return type(e).__name__


bob = client(first, auth=[("digest", "bob:pw")])
anon = client(other)
bob_all = make_digest_acl("bob", "pw", all=True)
world_read = ACL(Permissions.READ, Id("world", "anyone"))

# A znode only bob may touch: the other server's anonymous client gets NoAuth for every
# op ZooKeeper checks, and nothing changes.
bob.create("/secret", b"s1", acl=[bob_all])
bob.create("/secret/kid", b"")
print("anon get", outcome(lambda: anon.get("/secret")))
print("anon set", outcome(lambda: anon.set("/secret", b"x")))
print("anon create child", outcome(lambda: anon.create("/secret/c", b"")))
print("anon delete child", outcome(lambda: anon.delete("/secret/kid")))
print("anon children", outcome(lambda: anon.get_children("/secret")))
print("anon exists", outcome(lambda: anon.exists("/secret")))  # not checked, as 3.8.0
print("anon get_acls", outcome(lambda: anon.get_acls("/secret")))
print("bob sees", bob.get("/secret")[0].decode(), bob.exists("/secret/kid") is not None)

# A multi with one refused op fails whole.
t = anon.transaction()
t.create("/free", b"")
t.set_data("/secret", b"x")
results = t.commit()
print(
    "anon multi",
    isinstance(results[0], RolledBackError),
    isinstance(results[1], NoAuthError),
    anon.exists("/free") is None,
)

# After addauth the same connection may.
anon.add_auth("digest", "bob:pw")
print("after add_auth set", anon.set("/secret", b"s2").version)

# getACL and setACL with the aversion.
acl, stat = bob.get_acls("/secret")
print("get_acls", [(a.id.scheme, a.perms) for a in acl], stat.aversion)
stat = bob.set_acls("/secret", [bob_all, world_read], version=0)
print("set_acls aversion", stat.aversion, stat.version)
print("stale set_acls", outcome(lambda: bob.set_acls("/secret", [bob_all], version=0)))
# A reader without ADMIN sees digests as user:x.
reader = client(other)
acl, _ = reader.get_acls("/secret")
print("reader get_acls", sorted("%s:%s:%d" % (a.id.scheme, a.id.id, a.perms) for a in acl))
print("reader get", reader.get("/secret")[0].decode())
print("reader set", outcome(lambda: reader.set("/secret", b"x")))

# Invalid ACLs: empty (kazoo's create would put its default in place of an empty list,
# setACL sends it), an unknown scheme, and `auth` from a client with no digest.
print("empty acl", outcome(lambda: bob.set_acls("/secret", [])))
print("unknown scheme", outcome(lambda: bob.create("/bad2", b"", acl=[ACL(31, Id("kerberos", "x"))])))
auth_acl = ACL(Permissions.ALL, Id("auth", ""))
print("auth without digest", outcome(lambda: reader.create("/bad3", b"", acl=[auth_acl])))
bob.create("/mine", b"", acl=[auth_acl])
acl, _ = bob.get_acls("/mine")
print("auth expands", [(a.id.scheme, a.id.id.split(":")[0]) for a in acl])
print("reader on /mine", outcome(lambda: reader.get("/mine")))

# The superuser passes every check.
root = client(first, auth=[("digest", "super:test")])
print("super set", outcome(lambda: root.set("/mine", b"root was here")))
print("super set_acls", outcome(lambda: root.set_acls("/mine", OPEN_ACL_UNSAFE)))
print("reader after", reader.get("/mine")[0].decode())

# A znode for the HTTP check: bob alone may write, everyone may read; and one nobody
# but bob may read.
bob.create("/http-ro", b"kept", acl=[bob_all, world_read])
bob.create("/http-ro/kid", b"")
bob.create("/http-hidden", b"hidden", acl=[bob_all])
# One that clients on loopback may read and write, by address (the ip scheme).
local = ACL(Permissions.READ | Permissions.WRITE, Id("ip", "127.0.0.0/8"))
bob.create("/http-local", b"", acl=[bob_all, local])

for zk in (bob, anon, reader, root):
    zk.stop()
    zk.close()
print("done")
