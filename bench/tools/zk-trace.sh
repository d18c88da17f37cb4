#!/bin/bash
# Runs lone-trace with a loopback capture and the hops of each lone task (needs root for the capture).
# usage: bench/tools/zk-trace.sh <outdir> <lone-trace flags, e.g. --durable --only floor,direct --runs 1>
# then:  python3 bench/tools/zk-ports.py <outdir>   (connections to processes)
#        python3 bench/tools/zk-hops.py <outdir>/cap.bin <zk port> <outdir>/ports.json <tag> <path part> [from:to]
#        (path part: lone-trace-direct-floor or /inbox/; from:to picks tasks by order, e.g. 1000:2000)
out=$(realpath -m "$1"); shift
mkdir -p $out
TOOLS=$(cd "$(dirname "$0")" && pwd); cd "$TOOLS/../.."
python3 "$TOOLS/zk-sniff.py" $out/cap.bin "" 2>$out/sniff.err &
SNIFF=$!
sleep 0.5
LONE_TRACE_PIDS=$out/pids.json node bench/dist/lone-trace.js "$@" > $out/trace.out 2>$out/trace.err &
LT=$!
# map ports to pids while the run goes
( for i in $(seq 1 600); do ss -tnpH 2>/dev/null >> $out/ss.txt; ps -eo pid=,ppid= >> $out/ps.txt; sleep 1; kill -0 $LT 2>/dev/null || break; done ) &
SS=$!
wait $LT
kill $SNIFF; wait $SNIFF
kill $SS 2>/dev/null
cat $out/trace.out
