#!/usr/bin/env python3
"""Per-hop timeline of lone tasks from a zk-sniff.py capture (see zk-trace.sh).
usage: zk-hops.py capture.bin zkport ports.json tag path-part [from:to]
ports.json (zk-ports.py): {"<client port>": "submitter"|"worker"|"master"|"station"|...}"""
import struct, sys, json, statistics
from collections import defaultdict
cap, zkport, portmap = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3]))
portmap = {int(k): v for k, v in portmap.items()}
OPS = {1:"create",2:"delete",3:"exists",4:"getData",5:"setData",8:"getChildren",12:"getChildren2",15:"create2",13:"check",14:"multi",11:"ping",9:"sync",101:"setWatches",106:"addWatch",19:"createTTL",-11:"closeSession"}
PATHED = {1,2,3,4,5,8,12,15,13,19}
segs = defaultdict(list)  # (sport,dport) -> [(seq, ts, payload)]
with open(cap, "rb") as f:
    buf = f.read()
i = 0
while i < len(buf):
    ts, sp, dp, seq, ln, pl = struct.unpack_from("<QHHIHH", buf, i); i += 20
    p = buf[i:i+pl]; i += pl
    if sp == zkport or dp == zkport:
        segs[(sp, dp)].append((seq, ts, p))
events = []  # (ts, port, dir, kind, op, path, xid, err)
def rstr(b, o):
    n = struct.unpack_from(">i", b, o)[0]; o += 4
    if n < 0: return None, o
    return b[o:o+n].decode("utf8", "replace"), o + n
for (sp, dp), lst in segs.items():
    lst.sort(key=lambda x: x[1])
    # de-dup retransmits by seq
    seen = set(); stream = []
    for seq, ts, p in lst:
        if seq in seen: continue
        seen.add(seq); stream.append((ts, p))
    toserver = dp == zkport
    cport = sp if toserver else dp
    data = b""; tsq = []  # frame parsing with timestamps of the segment completing the frame
    pending = []
    acc = bytearray(); first = True
    xidop = {}
    for ts, p in stream:
        acc += p
        while len(acc) >= 4:
            n = struct.unpack_from(">i", acc, 0)[0]
            if n < 0 or n > 10_000_000: acc.clear(); break
            if len(acc) < 4 + n: break
            fr = bytes(acc[4:4+n]); del acc[:4+n]
            pending.append((ts, fr))
    for ts, fr in pending:
        if toserver:
            if len(fr) < 8: continue
            xid, op = struct.unpack_from(">ii", fr, 0)
            if xid == 0 and op == 0 and len(fr) >= 36:  # connect request (protocolVersion 0)
                continue
            path = None
            if op in PATHED and len(fr) >= 12:
                try: path, _ = rstr(fr, 8)
                except Exception: path = None
            events.append((ts, cport, "req", OPS.get(op, str(op)), path, xid, 0))
        else:
            if len(fr) < 16: continue
            xid, zxid, err = struct.unpack_from(">iqi", fr, 0)
            if xid == -1:
                typ, state = struct.unpack_from(">ii", fr, 16)
                path, _ = rstr(fr, 24)
                kind = {1:"created",2:"deleted",3:"dataChanged",4:"childrenChanged"}.get(typ, str(typ))
                events.append((ts, cport, "notify", kind, path, xid, 0))
            else:
                events.append((ts, cport, "rep", None, None, xid, err))
events.sort(key=lambda e: e[0])
# attach op/path to replies
reqs = {}
ev2 = []
for e in events:
    ts, port, d, op, path, xid, err = e
    if d == "req": reqs[(port, xid)] = (op, path, ts)
    if d == "rep":
        r = reqs.get((port, xid))
        if r is None: continue
        op, path = r[0], r[1]
        e = (ts, port, d, op, path, xid, err)
    ev2.append(e)
events = ev2
who = lambda p: portmap.get(p, f"?{p}")
# tasks: creates by the submitter of nodes under an inbox or the floor dir
subs = {p for p, r in portmap.items() if r == "submitter"}
by_path = defaultdict(list)
by_parent = defaultdict(list)
for idx, e in enumerate(events):
    if e[4]:
        by_path[e[4]].append(idx)
        by_parent[e[4].rsplit("/", 1)[0]].append(idx)
tasks = []
for idx, e in enumerate(events):
    ts, port, d, op, path, xid, err = e
    want = sys.argv[5] if len(sys.argv) > 5 else ""
    if d == "req" and op in ("create", "create2") and port in subs and path and ("/inbox/" in path or "floor" in path) and want in path:
        tasks.append(idx)
rows = []
lo, hi = (int(x) for x in (sys.argv[6] if len(sys.argv) > 6 else "0:1000000").split(":"))
for n, ti in enumerate(tasks):
    if n < lo or n >= hi: continue
    A = events[ti]; P = A[4]; parent = P.rsplit("/", 1)[0]
    t = {"A": A[0]}
    after = [events[j] for j in by_path[P] if j > ti]
    def first(pred, lst, start):
        for e in lst:
            if e[0] >= start and pred(e): return e
        return None
    B = first(lambda e: e[2]=="rep" and e[3] in ("create","create2") and e[1]==A[1], after, A[0])
    par = [events[j] for j in by_parent[parent] if j > ti] + [events[j] for j in by_path.get(parent, []) if j > ti]
    par.sort(key=lambda e: e[0])
    C = first(lambda e: e[2]=="notify" and e[3]=="childrenChanged" and e[4]==parent and who(e[1]) in ("worker","station","worker1","worker2"), par, A[0])
    if C is None: continue
    wport = C[1]
    D = first(lambda e: e[2]=="req" and e[3] in ("getChildren","getChildren2") and e[4]==parent and e[1]==wport, par, C[0])
    E = D and first(lambda e: e[2]=="rep" and e[5]==D[5] and e[1]==wport, [x for x in events[ti:ti+4000]], D[0])
    F = first(lambda e: e[2]=="req" and e[3]=="getData" and e[1]==wport, after, A[0])
    G = F and first(lambda e: e[2]=="rep" and e[5]==F[5] and e[1]==wport, after, F[0])
    H = first(lambda e: e[2]=="req" and e[3]=="setData" and e[1]==wport, after, A[0])
    I = H and first(lambda e: e[2]=="rep" and e[5]==H[5] and e[1]==wport, after, H[0])
    J = H and first(lambda e: e[2]=="notify" and e[3]=="dataChanged" and e[1]==A[1], after, H[0])
    K = J and first(lambda e: e[2]=="req" and e[3]=="getData" and e[1]==A[1], after, J[0])
    L = K and first(lambda e: e[2]=="rep" and e[5]==K[5] and e[1]==A[1], after, K[0])
    if None in (B, D, E, F, G, H, I, J, K, L): continue
    nxt = events[tasks[n+1]][0] if n + 1 < len(tasks) else None
    if nxt is not None:
        # a gap with other requests of the submitter in it (the trace's stamp reads) is not the submitter's code
        j = tasks[n+1]
        between = [e for e in events[max(0, j-400):j] if e[0] > L[0] and e[1] == A[1] and e[2] == "req" and e[3] not in ("ping", "delete")]
        if between: nxt = None
    # other writes in flight between A and L by anyone else (leader clean-up)
    others = sum(1 for e in events[ti:ti+4000] if e[0] > A[0] and e[0] < L[0] and e[2]=="req" and e[3] in ("create","create2","delete","setData","multi") and e[1] not in (A[1], wport))
    rows.append({
        "submitter create (server)": B[0]-A[0],
        "create → worker notified": C[0]-A[0],
        "worker: notified → list sent": D[0]-C[0],
        "list (server)": E[0]-D[0],
        "worker: listed → read sent": F[0]-E[0],
        "read (server)": G[0]-F[0],
        "worker: read → answer sent": H[0]-G[0],
        "answer (server) to worker": I[0]-H[0],
        "answer sent → submitter notified": J[0]-H[0],
        "submitter: notified → read sent": K[0]-J[0],
        "read (server) ": L[0]-K[0],
        "wire total create→read reply": L[0]-A[0],
        "submitter: read reply → next create": (nxt - L[0]) if nxt else None,
        "_others": others,
    })
tag = sys.argv[4] if len(sys.argv) > 4 else ""
print(f"{tag}: {len(rows)} tasks of {len(tasks)} traced; µs, median (mean)")
keys = [k for k in rows[0] if not k.startswith("_")] if rows else []
for k in keys:
    xs = [r[k]/1000 for r in rows if r[k] is not None]
    xs.sort()
    if not xs: continue
    # the last one's next create is a different phase
    med = statistics.median(xs); mean = statistics.mean(xs[: max(1, int(len(xs)*0.95))])
    print(f"  {k:40s} {med:8.0f} ({mean:6.0f})")
if rows:
    oth = [r["_others"] for r in rows]
    print(f"  tasks with another client's write in flight: {sum(1 for o in oth if o>0)} of {len(oth)}")
# requests per process
cnt = defaultdict(lambda: defaultdict(int))
for e in events:
    if e[2] == "req": cnt[who(e[1])][e[3]] += 1
for w, c in sorted(cnt.items()):
    print(f"  requests by {w}: {dict(c)}")
