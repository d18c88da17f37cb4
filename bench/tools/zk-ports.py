#!/usr/bin/env python3
"""zk-ports.py outdir -> writes outdir/ports.json mapping client ports to roles, from the pids.json lone-trace
writes (LONE_TRACE_PIDS) and the ss.txt and ps.txt zk-trace.sh takes during the run."""
import json, re, sys, os
out = sys.argv[1]
info = json.load(open(f"{out}/pids.json"))
zkport = info["port"]; pids = info["pids"]
# roles by pid: the watchdog pid and its children
role_of = {}
for role, pid in pids.items():
    if pid is None: continue
    role_of[pid] = role
ppid_of = {}
for line in open(f"{out}/ps.txt"):
    a = line.split()
    if len(a) == 2: ppid_of[int(a[0])] = int(a[1])
def parent(pid):
    return ppid_of.get(pid)
ports = {}
for line in open(f"{out}/ss.txt"):
    f = line.split()
    if len(f) < 5: continue
    local, peer = f[3], f[4]
    lp = int(local.rsplit(":",1)[1]); pp = int(peer.rsplit(":",1)[1])
    if pp != zkport: continue
    found = [int(x) for x in re.findall(r"pid=(\d+)", line)]
    if not found: continue
    r = next((role_of[p] for p in found if p in role_of), None) or next((role_of[parent(p)] for p in found if parent(p) in role_of), None)
    if lp not in ports or not str(ports[lp]).startswith("pid"):
        ports.setdefault(lp, r or f"pid{found[0]}")
ports = {k: ("worker" if str(v).startswith("worker") else v) for k, v in ports.items()}
json.dump({str(k): v for k, v in ports.items()}, open(f"{out}/ports.json", "w"))
print(zkport, ports)
