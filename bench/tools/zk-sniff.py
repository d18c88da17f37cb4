#!/usr/bin/env python3
"""zk-sniff.py out.bin [ports]: captures TCP segments with payload on lo (kernel timestamps) until
SIGTERM/SIGINT (root: an AF_PACKET socket).
Writes binary records: ts_ns(u64) sport(u16) dport(u16) seq(u32) len(u16) payload (whole)."""
import socket, struct, sys, signal
out = open(sys.argv[1], "wb")
ports = set(int(p) for p in sys.argv[2].split(",")) if len(sys.argv) > 2 and sys.argv[2] else None
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("lo", 0))
SO_TIMESTAMPNS = 35
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
stop = False
def handler(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, handler)
signal.signal(signal.SIGINT, handler)
s.settimeout(0.5)
n = 0
while not stop:
    try:
        data, anc, flags, addr = s.recvmsg(65536, 64)
    except socket.timeout:
        continue
    except InterruptedError:
        continue
    if addr[2] == 4:  # PACKET_OUTGOING: lo shows each packet twice
        continue
    ts = 0
    for lvl, typ, cd in anc:
        if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", cd[:16])
            ts = sec * 1_000_000_000 + nsec
    # lo with ETH_P_IP: frames start with a 14-byte ethernet header
    ip = data[14:]
    if len(ip) < 20 or ip[9] != 6:
        continue
    ihl = (ip[0] & 15) * 4
    tot = struct.unpack("!H", ip[2:4])[0]
    tcp = ip[ihl:tot]
    sport, dport, seq = struct.unpack("!HHI", tcp[:8])
    if ports is not None and sport not in ports and dport not in ports:
        continue
    doff = (tcp[12] >> 4) * 4
    payload = tcp[doff:]
    if not payload:
        continue
    p = payload
    out.write(struct.pack("<QHHIHH", ts, sport, dport, seq, len(payload), len(p)) + p)
    n += 1
out.close()
print(f"sniff: {n} segments", file=sys.stderr)
