#!/usr/bin/env python3
"""Splits a loopback pcap (tcpdump -i lo -w FILE) into one byte stream per TCP direction,
so each can be fed to `zw-wire decode`.

usage: scripts/pcap-streams.py CAPTURE.pcap OUT_DIR
Writes OUT_DIR/<src port>-<dst port>.bin for every direction that carried data, in
capture order (retransmissions skipped by sequence number), and prints one line per file.
Reads classic pcap with Ethernet (DLT 1) or Linux cooked (DLT 113) link layers, IPv4.
"""
import os
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            sys.exit(f"{path}: not a pcap file (too short)")
        magic = struct.unpack("<I", head[:4])[0]
        if magic == 0xA1B2C3D4:
            endian = "<"
        elif magic == 0xD4C3B2A1:
            endian = ">"
        else:
            sys.exit(f"{path}: not a classic pcap file (magic {magic:#x}); use tcpdump -w")
        link = struct.unpack(endian + "I", head[20:24])[0]
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            incl = struct.unpack(endian + "IIII", rec)[2]
            yield link, f.read(incl)


def tcp_payload(link, frame):
    if link == 1:
        off = 14
    elif link == 113:
        off = 16
    else:
        return None
    ip = frame[off:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack(">H", ip[2:4])[0]
    tcp = ip[ihl:total]
    if len(tcp) < 20:
        return None
    sport, dport, seq = struct.unpack(">HHI", tcp[:8])
    doff = (tcp[12] >> 4) * 4
    return sport, dport, seq, tcp[doff:]


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    streams, next_seq = {}, {}
    for link, frame in packets(src):
        seg = tcp_payload(link, frame)
        if not seg or not seg[3]:
            continue
        sport, dport, seq, data = seg
        key = (sport, dport)
        expected = next_seq.get(key, seq)
        if seq != expected:
            if (seq - expected) % 2**32 > 2**31:
                continue  # a retransmission of bytes already kept
        streams.setdefault(key, bytearray()).extend(data)
        next_seq[key] = (seq + len(data)) % 2**32
    for (sport, dport), data in sorted(streams.items()):
        name = os.path.join(out, f"{sport}-{dport}.bin")
        with open(name, "wb") as f:
            f.write(data)
        print(f"{name}\t{len(data)} bytes")


if __name__ == "__main__":
    main()
