"""Checks that the TypeScript grid behaves as docs/protocol.md says, from a Python (kazoo) client.

Usage: conformance.py --connect HOSTS --root R --ts-worker NAME --ts-worker-cwd DIR GROUP...
Groups: queued, direct, cancel, worker, bad-queue. Prints "ok: ..." per check; the first failed check
ends the run with exit status 1 and its message on stderr.
"""

import argparse
import json
import os
import sys
import time
import uuid

from kazoo.exceptions import NoNodeError

from zkgrid_protocol import KazooWorker, Submitter, connect, decode, seq, wait_until

# The keys a direct task's answer may hold (docs/protocol.md, "Direct tasks", step 3).
ANSWER_KEYS = {"v", "id", "state", "attempt", "worker", "submittedAt", "assignedAt", "startedAt",
               "finishedAt", "exitCode", "signal", "reason", "outputDir", "stdoutTail", "stderrTail",
               "output", "meta"}


def ok(message):
    print(f"ok: {message}", flush=True)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_equal(actual, expected, what):
    check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


def tid(label):
    return f"py-{label}-{uuid.uuid4().hex[:12]}"


def nested_arrays(levels):
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


class Context:
    def __init__(self, args):
        self.connect_string = args.connect
        self.zk = connect(args.connect)
        self.root = args.root
        self.ts_worker = args.ts_worker
        self.ts_cwd = os.path.realpath(args.ts_worker_cwd)

    def submitter(self):
        return Submitter(self.zk, self.root)

    def ts_session(self, sub):
        workers = wait_until(f"worker {self.ts_worker} to register",
                            lambda: self.ts_worker in sub.live_workers() and sub.live_workers())
        return workers[self.ts_worker][1]


# ---- a kazoo submitter, the TypeScript worker --------------------------------------------------

def group_queued(ctx):
    sub = ctx.submitter()
    w = ctx.ts_worker
    ids = {k: tid(k) for k in ("env", "relcwd", "abscwd", "override", "args", "timeout", "exit3")}
    tasks = [
        {"id": ids["env"], "meta": {"k": [1, {"x": "y"}]},
         "cmd": 'printf "%s\\n" "$ZKGRID_TASK_ID" "$ZKGRID_TASK_ATTEMPT" "$ZKGRID_WORKER" '
                '"$ZKGRID_OUTPUT_DIR" "$(pwd -P)" "${ZKGRID_CONNECT-unset}" "${ZKGRID_ROOT-unset}" '
                '"${ZKGRID_AUTH-unset}"'},
        {"id": ids["relcwd"], "cwd": "sub/dir", "cmd": "pwd -P"},
        {"id": ids["abscwd"], "cwd": f"/nonexistent-zkgrid-{uuid.uuid4().hex}", "cmd": "true"},
        {"id": ids["override"], "env": {"ZKGRID_TASK_ID": "mine", "GREETING": "hi"},
         "cmd": 'echo "$ZKGRID_TASK_ID $GREETING"'},
        {"id": ids["args"], "cmd": "printf", "args": ["%s|%s", "a b", ""]},
        {"id": ids["timeout"], "cmd": "sleep 30", "timeoutMs": 1000},
        {"id": ids["exit3"], "cmd": "exit 3"},
    ]
    _, batch = sub.submit(tasks)
    got = sub.wait(list(ids.values()))

    env = got[ids["env"]]
    expect_equal(env["state"], "succeeded", "state of the environment task")
    out_dir = os.path.join(ctx.ts_cwd, w, ids["env"])
    lines = env["stdoutTail"].split("\n")
    expect_equal(lines[:8], [ids["env"], "1", w, out_dir, out_dir, "unset", "unset", "unset"],
                 "ZKGRID_TASK_ID, _ATTEMPT, _WORKER, _OUTPUT_DIR, the working directory, and ZKGRID_CONNECT, "
                 "_ROOT, _AUTH (the worker was started with --connect/--root, not the environment)")
    ok("a task's environment holds ZKGRID_TASK_ID, ZKGRID_TASK_ATTEMPT, ZKGRID_WORKER, ZKGRID_OUTPUT_DIR; "
       "not ZKGRID_CONNECT/ZKGRID_ROOT unless the worker's own environment has them")
    ok("without cwd a task runs in its output folder <worker cwd>/<worker>/<id>")
    expect_equal(env["v"], 1, "v")
    expect_equal(env["attempt"], 1, "attempt")
    expect_equal(env["worker"], w, "worker")
    expect_equal(env["submittedAt"], batch["submittedAt"], "submittedAt (the batch's, from the submitter)")
    expect_equal(env["outputDir"], f"{w}/{ids['env']}", "outputDir")
    expect_equal(env["meta"], {"k": [1, {"x": "y"}]}, "meta")
    check(isinstance(env.get("startedAt"), int) and isinstance(env.get("assignedAt"), int),
          f"startedAt and assignedAt in {env}")
    ok("a queued task's status carries attempt, worker, the submitter's submittedAt, outputDir and meta")

    rel = got[ids["relcwd"]]
    expect_equal(rel["state"], "succeeded", f"state of the relative-cwd task ({rel.get('reason')})")
    expect_equal(rel["stdoutTail"].strip(), os.path.join(ctx.ts_cwd, w, ids["relcwd"], "sub", "dir"),
                 "working directory of a relative cwd")
    ok("a relative cwd is inside the output folder, and created")

    absent = got[ids["abscwd"]]
    expect_equal(absent["state"], "failed", "state with an absolute cwd that does not exist")
    check("is not a directory" in absent.get("reason", ""), f"reason names the cwd: {absent}")
    ok("an absolute cwd is not created: the task fails with 'cwd ... is not a directory'")

    expect_equal(got[ids["override"]]["stdoutTail"], "mine hi\n", "output of the env-override task")
    ok("a task's env is applied last and wins over ZKGRID_* variables")
    expect_equal(got[ids["args"]]["stdoutTail"], "a b|", "output of cmd with args (no shell)")
    ok("cmd with args runs the program without a shell")

    timed = got[ids["timeout"]]
    expect_equal(timed["state"], "timed-out", "state of the task past its timeoutMs")
    expect_equal(timed.get("signal"), "SIGTERM", "signal of a timed-out task")
    check("exitCode" not in timed, f"no exitCode beside the signal: {timed}")
    ok("a timeout sends SIGTERM, and timed-out carries signal SIGTERM")

    failed = got[ids["exit3"]]
    expect_equal((failed["state"], failed.get("exitCode")), ("failed", 3), "state and exit code of exit 3")
    ok("a non-zero exit ends failed with its exitCode")


def group_direct(ctx):
    sub = ctx.submitter()
    w = ctx.ts_worker
    session = ctx.ts_session(sub)
    task = {"id": tid("direct"), "cmd": "echo direct", "meta": {"m": 1}}
    path, batch, stat = sub.submit_direct(w, session, task)
    answer = wait_until(
        "the worker's answer over the direct task's node",
        lambda: (lambda data: data if data and "tasks" not in data else None)(read_json(ctx.zk, path)),
    )
    extra = set(answer) - ANSWER_KEYS
    check(not extra, f"the answer holds keys the document does not list: {sorted(extra)}")
    expect_equal(
        {k: answer.get(k) for k in ("v", "id", "state", "attempt", "worker", "submittedAt", "assignedAt",
                                    "exitCode", "outputDir", "stdoutTail", "stderrTail", "meta")},
        {"v": 1, "id": task["id"], "state": "succeeded", "attempt": 1, "worker": w,
         "submittedAt": batch["submittedAt"], "assignedAt": stat.ctime, "exitCode": 0,
         "outputDir": f"{w}/{task['id']}", "stdoutTail": "direct\n", "stderrTail": "", "meta": {"m": 1}},
        "the direct task's answer",
    )
    check(isinstance(answer.get("startedAt"), int) and isinstance(answer.get("finishedAt"), int),
          f"startedAt and finishedAt in {answer}")
    ok("a direct task's answer holds exactly the documented fields: submittedAt from the node's batch, "
       "assignedAt the node's ctime")
    recorded = sub.wait([task["id"]])[task["id"]]
    expect_equal(recorded, answer, "the status in R/results against the answer in the node")
    wait_until("the answered node to be deleted", lambda: ctx.zk.exists(path) is None)
    ok("the leader records the answer unchanged in R/results and deletes the node")

    # A node the worker cannot decode: it never writes to it; the leader rejects it under its name.
    bad = tid("undecodable")
    bad_path = sub.path("inbox", f"{w}@{session}", bad)
    ctx.zk.create(bad_path, b"not json")
    versions = []
    ctx.zk.DataWatch(bad_path, lambda data, st: versions.append(None if st is None else st.version))
    status = sub.wait([bad])[bad]
    expect_equal(status["state"], "rejected", "state of an undecodable inbox node")
    prefix = f"inbox node {w}@{session}/{bad}: not valid JSON"
    check(status.get("reason", "").startswith(prefix), f"reason starts with {prefix!r}: {status}")
    wait_until("the undecodable node to be deleted", lambda: ctx.zk.exists(bad_path) is None)
    check(all(v in (0, None) for v in versions), f"the worker wrote to a node it cannot decode: {versions}")
    ok("an inbox node the worker cannot decode is left alone, then rejected under its name and deleted")

    try:
        sub.submit_direct(w, "deadbeef", {"id": tid("fenced"), "cmd": "true"})
        raise AssertionError("a create in a session's missing inbox succeeded")
    except NoNodeError:
        ok("an inbox of a session that is gone gives NONODE (the submitter uses the queue instead)")


def read_json(zk, path):
    try:
        data, _ = zk.get(path)
    except NoNodeError:
        return None
    return decode(data)


def assigned_ids(zk, root, worker):
    data = read_json(zk, f"{root}/assign/{worker}")
    return {t["id"] for t in (data or {}).get("tasks", [])}


def group_cancel(ctx):
    sub = ctx.submitter()
    w = ctx.ts_worker
    running = tid("running")
    sub.submit([{"id": running, "cmd": "sleep 30"}])
    wait_until(f"{running} in R/assign/{w}", lambda: running in assigned_ids(ctx.zk, ctx.root, w))
    request = sub.cancel([running])
    status = sub.wait([running])[running]
    expect_equal((status["state"], status["attempt"], status.get("worker")), ("cancelled", 1, w),
                 "state, attempt and worker of a cancelled running task")
    wait_until("the cancel request to be deleted", lambda: ctx.zk.exists(request) is None)
    ok("a running task that leaves its assignment is cancelled; the request is deleted afterwards")

    stuck = tid("queued")
    sub.submit([{"id": stuck, "cmd": "true", "labels": ["nobody-has-this-label"]}])
    # The request must not be read before the queue node: wait until the leader knows the task.
    wait_until(f"{stuck} to be read by the leader", lambda: cancel_sticks(sub, stuck), timeout=30)
    status = sub.wait([stuck])[stuck]
    expect_equal((status["state"], status["attempt"], status.get("reason")),
                 ("cancelled", 0, "cancelled before it ran"), "a queued task's cancelled status")
    ok("a queued task is cancelled at once, attempt 0; a cancel the leader could not match is sent again")

    unknown = f"never-submitted-{uuid.uuid4().hex}"
    request = sub.cancel([unknown])
    wait_until("a request naming only an unknown id to be deleted", lambda: ctx.zk.exists(request) is None)
    sub.read_results()
    check(sub.first(unknown) is None, f"a status for an id never submitted: {sub.first(unknown)}")
    ok("a request naming only unknown ids is deleted, and nothing is written for them")


def cancel_sticks(sub, task_id):
    """Sends a cancel; true once it took (a status), false if the request went without one."""
    request = sub.cancel([task_id])
    wait_until("the cancel request to be handled", lambda: sub.zk.exists(request) is None)
    sub.read_results()
    return sub.first(task_id) is not None


# ---- a kazoo worker, the TypeScript leader -----------------------------------------------------

def group_worker(ctx):
    sub = ctx.submitter()
    name = f"py-worker-{uuid.uuid4().hex[:8]}"
    worker_zk = connect(ctx.connect_string)  # a session of its own, as a separate worker would have
    worker = None
    try:
        ids = {k: tid(k) for k in ("ok", "fail", "long")}
        worker = KazooWorker(worker_zk, ctx.root, name, labels=["kazoo"], capacity=3,
                             duplicate_finals=[ids["ok"]])
        worker.start()
        first = wait_until(f"the leader to create R/assign/{name}",
                           lambda: read_json(sub.zk, worker.path("assign", name)))
        expect_equal((first["worker"], first["session"], first["tasks"]), (name, worker.session, []),
                     "the assignment the leader creates when a worker joins")
        ok("the leader, not the worker, creates R/assign/<worker> when the worker joins (no tasks yet)")
        sub.submit([
            {"id": ids["ok"], "cmd": "echo fine", "labels": ["kazoo"]},
            {"id": ids["fail"], "cmd": "echo bad >&2; exit 4", "labels": ["kazoo"]},
        ])
        got = sub.wait([ids["ok"], ids["fail"]])
        good, bad = got[ids["ok"]], got[ids["fail"]]
        expect_equal((good["state"], good["worker"], good["attempt"], good.get("exitCode"), good["stdoutTail"]),
                     ("succeeded", name, 1, 0, "fine\n"), "the kazoo worker's succeeded task")
        expect_equal((bad["state"], bad.get("exitCode"), bad["stderrTail"]), ("failed", 4, "bad\n"),
                     "the kazoo worker's failed task")
        check(isinstance(good.get("startedAt"), int), f"startedAt from the running report: {good}")
        running = [u["id"] for u in worker.reported if u["state"] == "running"]
        check(ids["ok"] in running and ids["fail"] in running, f"running was reported for both: {running}")
        ok("the leader assigns to a kazoo worker through R/assign/<worker>; its running and final reports "
           "become results")

        wait_until("both tasks to leave the kazoo worker's assignment",
                   lambda: not ({ids["ok"], ids["fail"]} & assigned_ids(sub.zk, ctx.root, name)))
        wait_until("the kazoo worker to see the clean-up",
                   lambda: {ids["ok"], ids["fail"]} <= set(worker.cleaned_up))
        check(not worker.cancelled, f"clean-up taken for a cancel: {worker.cancelled}")
        ok("a task leaving the assignment after its final report is clean-up, not a cancel")

        wait_until("the kazoo worker's report nodes to be applied and deleted",
                   lambda: not worker_zk.get_children(worker.report_dir))
        sub.read_results()
        expect_equal(len(sub.all_of(ids["ok"])), 1, "results for a task whose final report was written twice")
        ok("a report node written twice (a retry without a protected prefix) makes one result")

        sub.submit([{"id": ids["long"], "cmd": "sleep 30", "labels": ["kazoo"]}])
        wait_until("the long task to run on the kazoo worker",
                   lambda: any(u["id"] == ids["long"] and u["state"] == "running" for u in worker.reported))
        sub.cancel([ids["long"]])
        status = sub.wait([ids["long"]])[ids["long"]]
        expect_equal((status["state"], status["worker"], status.get("signal")), ("cancelled", name, "SIGTERM"),
                     "the kazoo worker's cancelled task")
        check(ids["long"] in worker.cancelled, f"the worker saw a cancel: {worker.cancelled}")
        ok("a running task leaving the kazoo worker's assignment is cancelled, and its cancelled report stands")

        direct = {"id": tid("direct"), "cmd": "echo straight", "labels": ["kazoo"]}
        path, batch, stat = sub.submit_direct(name, worker.session, direct)
        answer = wait_until("the kazoo worker's answer",
                            lambda: (lambda d: d if d and "tasks" not in d else None)(read_json(sub.zk, path)))
        recorded = sub.wait([direct["id"]])[direct["id"]]
        expect_equal(recorded, answer, "the leader's record of the kazoo worker's answer")
        expect_equal((answer["submittedAt"], answer["assignedAt"]), (batch["submittedAt"], stat.ctime),
                     "submittedAt and assignedAt of the answer")
        ok("a kazoo worker's answer over its inbox node is the task's result, recorded unchanged")

        declined = {"id": tid("declined"), "cmd": "true", "labels": ["kazoo", "gpu"]}
        path, _, _ = sub.submit_direct(name, worker.session, declined)
        wait_until("the decline", lambda: declined["id"] in worker.declined)
        wait_until("the declined node to be deleted", lambda: sub.zk.exists(path) is None)
        cancel_sticks(sub, declined["id"])
        status = sub.wait([declined["id"]])[declined["id"]]
        expect_equal((status["state"], status["attempt"]), ("cancelled", 0),
                     "a declined direct task, queued again and then cancelled")
        ok("a declined direct task is queued again with its attempt unused")
    finally:
        if worker is not None:
            worker.stop()
        worker_zk.stop()
        worker_zk.close()
    check_draining(ctx, sub)


def check_draining(ctx, sub):
    """A started task handed back in a draining report keeps its attempt; the session gets no more."""
    label = f"drain-{uuid.uuid4().hex[:8]}"  # only the two kazoo sessions below may run these tasks
    names = {k: f"py-{k}-{uuid.uuid4().hex[:8]}" for k in ("stopping", "next")}
    sessions = {k: connect(ctx.connect_string) for k in names}
    workers = {}
    try:
        stopping = workers["stopping"] = KazooWorker(sessions["stopping"], ctx.root, names["stopping"],
                                                     labels=[label], capacity=3)
        stopping.start()
        task = tid("handed-back")
        # Holds on the stopping worker until handed back; elsewhere prints its attempt number.
        sub.submit([{"id": task, "labels": [label],
                     "cmd": f'[ "$ZKGRID_WORKER" = {names["stopping"]} ] && sleep 30; '
                            f'echo "$ZKGRID_TASK_ATTEMPT"'}])
        started = wait_until(f"{task} to run on {names['stopping']}", lambda: next(
            (u for u in stopping.reported if u["id"] == task and u["state"] == "running"), None))
        expect_equal(started["attempt"], 1, "attempt of the first hand-out")
        check(isinstance(started.get("startedAt"), int), f"running carries startedAt: {started}")
        stopping.hand_back(task)
        wait_until(f"{task} to leave {names['stopping']}'s assignment",
                   lambda: task not in assigned_ids(sub.zk, ctx.root, names["stopping"]))
        wait_until(f"{names['stopping']}'s draining report to be applied and deleted",
                   lambda: not sessions["stopping"].get_children(stopping.report_dir))

        # The draining session is now the only one with the label, and it holds nothing: the least loaded.
        extras = [tid(f"after-drain-{i}") for i in range(3)]
        witness = tid("witness")  # runs on the TypeScript worker once the leader has read this node
        sub.submit([{"id": i, "labels": [label], "cmd": "echo extra"} for i in extras]
                   + [{"id": witness, "cmd": "true"}])
        expect_equal(sub.wait([witness])[witness]["state"], "succeeded", "state of the witness task")
        sub.read_results()
        check(sub.first(task) is None, f"a status for the handed-back task: {sub.first(task)}")
        check(not set(extras) & assigned_ids(sub.zk, ctx.root, names["stopping"]),
              "the draining session was given new tasks")

        nxt = workers["next"] = KazooWorker(sessions["next"], ctx.root, names["next"], labels=[label],
                                            capacity=4)
        nxt.start()
        got = sub.wait([task, *extras])
        status = got[task]
        expect_equal((status["state"], status["worker"], status["attempt"], status["stdoutTail"]),
                     ("succeeded", names["next"], 1, "1\n"),
                     "state, worker, attempt and output of the handed-back task on the next session")
        rerun = [u for u in nxt.reported if u["id"] == task and u["state"] == "running"]
        expect_equal([u["attempt"] for u in rerun], [1], "attempts of the handed-back task on the next session")
        ok("a started task handed back (returned) in a draining report keeps its attempt: the next session "
           "runs it as attempt 1")
        for i in extras:
            expect_equal((got[i]["state"], got[i]["worker"]), ("succeeded", names["next"]),
                         f"state and worker of {i}")
        check(not set(extras) & stopping.assigned_ever,
              f"the draining session's assignment listed new tasks: {sorted(set(extras) & stopping.assigned_ever)}")
        ok("a session that sent a draining report is assigned no new task, though it is the least loaded")

        wait_until("the results to settle", lambda: not sessions["next"].get_children(nxt.report_dir))
        sub.read_results()
        expect_equal([s["state"] for s in sub.all_of(task)], ["succeeded"], "statuses of the handed-back task")
        ok("the handed-back task ends succeeded, once")
    finally:
        for worker in workers.values():
            worker.stop()
        for zk in sessions.values():
            zk.stop()
            zk.close()


# ---- bad queue nodes ---------------------------------------------------------------------------

def group_bad_queue(ctx):
    sub = ctx.submitter()
    unreadable = {
        "not UTF-8": (b"\xff\xfe{}", "not valid UTF-8"),
        "not JSON": (b"hello", "not valid JSON"),
        "an array": (b"[1,2]", "expected a JSON object, got an array"),
        "empty": (b"", "not valid JSON"),
        "too deep": (b"[" * 65 + b"]" * 65, "nested deeper than 64 levels"),
    }
    expected = {}
    for what, (data, message) in unreadable.items():
        name = sub.submit_raw(data)
        expected[f"q{seq(name):010d}.0"] = (what, name, message)
    got = sub.wait(list(expected))
    for task_id, (what, name, message) in expected.items():
        status = got[task_id]
        prefix = f"queue node {name}: {message}"
        expect_equal(status["state"], "rejected", f"state of a queue node that is {what}")
        check(status.get("reason", "").startswith(prefix), f"reason for {what}: {status.get('reason')!r} "
                                                           f"should start with {prefix!r}")
        ok(f"a queue node that is {what} becomes one rejected status under {task_id}, reason prefixed "
           f"'queue node <name>: '")

    a, b = tid("a"), tid("b")
    name, _ = sub.submit([{"id": a, "cmd": "true"}, {"id": b, "cmd": "true"}, {"cmd": "true"}], batchId="../x")
    third = f"q{seq(name):010d}.2"
    got = sub.wait([a, b, third])
    for task_id in (a, b, third):
        status = got[task_id]
        expect_equal(status["state"], "rejected", f"state of {task_id} in a batch with a bad batchId")
        prefix = f"queue node {name}: batchId: "
        check(status.get("reason", "").startswith(prefix), f"reason {status.get('reason')!r} should start "
                                                           f"with {prefix!r}")
    ok("a bad batchId rejects every task with a valid id under its own id, the others under q<seq>.<index>")

    versions = {"v 2": {"v": 2}, 'v "1"': {"v": "1"}, "no v": {}}
    by_version = {}
    for what, v in versions.items():
        ids = [tid("v"), tid("v")]
        batch = {**v, "batchId": f"b-{uuid.uuid4().hex}", "submittedAt": int(time.time() * 1000),
                 "submitter": sub.name, "tasks": [{"id": i, "cmd": "true"} for i in ids]}
        by_version[what] = (sub.submit_raw(json.dumps(batch).encode()), ids)
    got = sub.wait([i for _, ids in by_version.values() for i in ids])
    for what, (v_name, ids) in by_version.items():
        prefix = f"queue node {v_name}: v: "
        for task_id in ids:
            status = got[task_id]
            expect_equal(status["state"], "rejected", f"state of {task_id} in a queue node with {what}")
            check(status.get("reason", "").startswith(prefix), f"reason {status.get('reason')!r} of a task in a "
                                                               f"queue node with {what} should start with {prefix!r}")
        ok(f"a queue node with {what} rejects every task under its own id, reason 'queue node <name>: v: ...'")
    expect_equal(got[by_version["v 2"][1][0]]["reason"],
                 f"queue node {by_version['v 2'][0]}: v: unsupported schema version 2; this reader knows 1",
                 "the reason for v 2 (the document's example)")
    name_v = {n for n, _ in by_version.values()}

    ids = {k: tid(k) for k in ("neg", "good", "deep-ok", "deep-bad")}
    sub.submit([
        {"id": ids["neg"], "cmd": "true", "timeoutMs": -5},
        {"id": ids["good"], "cmd": "true"},
        {"id": ids["deep-ok"], "cmd": "true", "meta": {"a": nested_arrays(59)}},
        {"id": ids["deep-bad"], "cmd": "true", "meta": {"a": nested_arrays(60)}},
    ])
    got = sub.wait(list(ids.values()))
    neg = got[ids["neg"]]
    expect_equal(neg["state"], "rejected", "state of a task with timeoutMs -5")
    check(neg.get("reason", "").startswith("tasks[0].timeoutMs: "), f"reason names the field: {neg}")
    expect_equal(got[ids["good"]]["state"], "succeeded", "state of the good task beside a bad one")
    ok("a bad task is rejected alone, reason prefixed tasks[<index>], and the rest of its batch runs")
    expect_equal(got[ids["deep-ok"]]["state"], "succeeded", "state of meta 60 levels deep (arrays counted)")
    expect_equal(got[ids["deep-ok"]]["meta"], {"a": nested_arrays(59)}, "meta returned unchanged")
    deep = got[ids["deep-bad"]]
    expect_equal((deep["state"], deep.get("reason")), ("rejected", "tasks[3].meta: nests deeper than 60 levels"),
                 "a meta 61 levels deep")
    ok("arrays count as nesting levels: meta of 60 levels runs, 61 is rejected")
    bad_nodes = {name} | name_v | {e[1] for e in expected.values()}
    wait_until("the bad queue nodes to be deleted",
               lambda: not bad_nodes & set(sub.zk.get_children(sub.path("queue"))))
    ok("the leader deletes bad queue nodes once their tasks are final")


GROUPS = {
    "queued": group_queued,
    "direct": group_direct,
    "cancel": group_cancel,
    "worker": group_worker,
    "bad-queue": group_bad_queue,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connect", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--ts-worker", required=True)
    parser.add_argument("--ts-worker-cwd", required=True)
    parser.add_argument("groups", nargs="+", choices=sorted(GROUPS))
    args = parser.parse_args()
    ctx = Context(args)
    try:
        for group in args.groups:
            started = time.monotonic()
            GROUPS[group](ctx)
            print(f"group {group}: passed in {time.monotonic() - started:.1f} s", flush=True)
    except AssertionError as error:
        print(f"FAILED: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        ctx.zk.stop()
        ctx.zk.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
