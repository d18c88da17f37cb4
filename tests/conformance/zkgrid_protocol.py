"""A zkgrid client in Python, written from docs/protocol.md alone: a submitter and a worker.

It knows only the document: paths, payloads, the order of writes. The conformance checks
(conformance.py) drive it against the TypeScript master and worker.
"""

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
)

FINAL_STATES = {"succeeded", "failed", "timed-out", "cancelled", "rejected"}
TAIL_BYTES = 4096


def now_ms():
    return int(time.time() * 1000)


def encode(payload):
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(data):
    return json.loads(data.decode("utf-8"))


def seq(name):
    """The sequence number ZooKeeper appended: the last 10 characters of the name."""
    return int(name[-10:])


def session_hex(zk):
    return format(zk.client_id[0], "x")


def connect(hosts):
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=20)
    return zk


def wait_until(what, predicate, timeout=30.0, interval=0.1):
    """Polls `predicate` until it returns a true value, which is returned; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def tail(data):
    """The last TAIL_BYTES bytes of a stream, cut on a character boundary."""
    cut = data[-TAIL_BYTES:]
    while cut and (cut[0] & 0xC0) == 0x80:
        cut = cut[1:]
    return cut.decode("utf-8", errors="replace")


class Grid:
    """The grid's paths under root R (docs/protocol.md, "The layout")."""

    def __init__(self, zk, root):
        self.zk = zk
        self.root = root

    def path(self, *parts):
        return "/".join([self.root, *parts])

    def protected_create(self, parent, letter, payload):
        """A protected sequential create: after a connection loss, look for our uuid first."""
        marker = f"_c_{uuid.uuid4()}-"
        while True:
            try:
                return self.zk.create(f"{parent}/{marker}{letter}", payload, sequence=True)
            except ConnectionLoss:
                for child in self.zk.get_children(parent):
                    if child.startswith(marker):
                        return f"{parent}/{child}"
            except NoNodeError:
                # A missing parent may be made by anyone, persistent and empty.
                try:
                    self.zk.create(parent, b"", makepath=True)
                except NodeExistsError:
                    pass


class Submitter(Grid):
    """Submits batches and direct tasks, cancels, and reads results above a baseline."""

    def __init__(self, zk, root, name="kazoo-conformance"):
        super().__init__(zk, root)
        self.name = name
        self.baseline = self.take_baseline()
        self.read_nodes = set()
        self.statuses = []  # every status above the baseline, in R/results order
        self.changed = threading.Event()
        self._watching = False

    def take_baseline(self):
        try:
            return max((seq(n) for n in self.zk.get_children(self.path("results"))), default=-1)
        except NoNodeError:
            return -1

    def submit(self, tasks, **batch_fields):
        """Creates one queue node; returns (node name, the batch as written)."""
        batch = {
            "v": 1,
            "batchId": f"b-{uuid.uuid4().hex}",
            "submittedAt": now_ms(),
            "submitter": self.name,
            "tasks": tasks,
        }
        batch.update(batch_fields)
        path = self.protected_create(self.path("queue"), "q", encode(batch))
        return path.rsplit("/", 1)[1], batch

    def submit_raw(self, data):
        """Creates a queue node holding exactly `data`; returns its name."""
        path = self.protected_create(self.path("queue"), "q", data)
        return path.rsplit("/", 1)[1]

    def cancel(self, ids):
        request = {"v": 1, "ids": ids, "requestedAt": now_ms(), "by": self.name}
        return self.protected_create(self.path("cancel"), "c", encode(request))

    def live_workers(self):
        """{name: (registration, session)} of registrations whose session owns their node."""
        out = {}
        try:
            names = self.zk.get_children(self.path("workers"))
        except NoNodeError:
            return out
        for name in names:
            try:
                data, stat = self.zk.get(self.path("workers", name))
            except NoNodeError:
                continue
            reg = decode(data)
            if reg.get("session") == format(stat.ephemeralOwner, "x"):
                out[name] = (reg, reg["session"])
        return out

    def submit_direct(self, worker, session, task, submitted_at=None):
        """Creates R/inbox/<worker>@<session>/<id>; returns (path, batch, creation stat)."""
        batch = {
            "v": 1,
            "batchId": f"b-{uuid.uuid4().hex}",
            "submittedAt": submitted_at if submitted_at is not None else now_ms(),
            "submitter": self.name,
            "tasks": [task],
        }
        path = self.path("inbox", f"{worker}@{session}", task["id"])
        try:
            self.zk.create(path, encode(batch))
        except NodeExistsError:
            pass  # a retry that found its own create
        _, stat = self.zk.get(path)
        return path, batch, stat

    def _watch(self):
        if self._watching:
            return
        self._watching = True

        def on_children(_children):
            self.changed.set()

        self.zk.ChildrenWatch(self.path("results"), on_children)

    def read_results(self):
        try:
            names = self.zk.get_children(self.path("results"))
        except NoNodeError:
            return
        for name in sorted(names, key=seq):
            if seq(name) <= self.baseline or name in self.read_nodes:
                continue
            try:
                data, _ = self.zk.get(self.path("results", name))
            except NoNodeError:
                continue  # pruned
            self.read_nodes.add(name)
            batch = decode(data)
            assert batch.get("v") == 1, f"result node {name} has v={batch.get('v')!r}"
            self.statuses.extend(batch["results"])

    def first(self, task_id):
        for status in self.statuses:
            if status["id"] == task_id:
                return status
        return None

    def all_of(self, task_id):
        return [s for s in self.statuses if s["id"] == task_id]

    def wait(self, ids, timeout=60.0):
        """The first final status of each id, once every id has one."""
        self._watch()
        deadline = time.monotonic() + timeout
        while True:
            self.changed.clear()
            self.read_results()
            missing = [i for i in ids if self.first(i) is None]
            if not missing:
                return {i: self.first(i) for i in ids}
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no final status after {timeout:.0f} s for: {', '.join(missing)}")
            self.changed.wait(min(left, 1.0))


class KazooWorker(Grid):
    """A worker (docs/protocol.md, "Implementing a worker") that runs `cmd` tasks with /bin/sh.

    Every ZooKeeper write happens on its own loop thread; watch callbacks and task threads only queue
    events for it, so no callback blocks.
    """

    def __init__(self, zk, root, name, labels=(), capacity=2, duplicate_finals=()):
        super().__init__(zk, root)
        self.name = name
        self.labels = list(labels)
        self.capacity = capacity
        self.duplicate_finals = set(duplicate_finals)  # ids whose final report is written twice
        self.session = session_hex(zk)
        self.report_dir = self.path("reports", f"{name}@{self.session}")
        self.inbox_dir = self.path("inbox", f"{name}@{self.session}")
        self.events = queue.Queue()
        self.max_epoch = -1
        self.held = {}  # (id, attempt) -> {"proc", "final_written", "startedAt", "direct"}
        self.cleaned_up = []  # ids that left the assignment after their final report
        self.cancelled = []  # ids that left it before
        self.declined = []
        self.reported = []  # every update written, in order
        self.inbox_versions = {}  # direct task path -> versions seen by this worker
        self.assignment_seen = threading.Event()
        self.assigned_ever = set()  # every id any assignment to this session listed
        self.draining = False  # set by hand_back: every report from then on says draining
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)

    # ---- start: report dir and inbox, then the registration, then the watches -------------------

    def start(self):
        for path in (self.report_dir, self.inbox_dir):
            try:
                self.zk.create(path, b"", makepath=True)
            except NodeExistsError:
                pass
        registration = {
            "v": 1,
            "name": self.name,
            "host": socket.gethostname()[:255] or "localhost",
            "pid": os.getpid(),
            "capacity": self.capacity,
            "labels": self.labels,
            "version": "kazoo-conformance",
            "startedAt": now_ms(),
            "session": self.session,
        }
        try:
            self.zk.create(self.path("workers", self.name), encode(registration), ephemeral=True, makepath=True)
        except NodeExistsError:
            _, stat = self.zk.get(self.path("workers", self.name))
            assert format(stat.ephemeralOwner, "x") == self.session, f"worker name {self.name} is taken"
        self.thread.start()
        self.zk.DataWatch(self.path("assign", self.name), lambda data, stat: self.events.put(("assign", data)))
        self.zk.ChildrenWatch(self.inbox_dir, lambda children: self.events.put(("inbox", list(children))))

    def hand_back(self, task_id):
        """Stops as a graceful stop does: gives `task_id` back (`returned`) in a draining report."""
        self.events.put(("hand_back", task_id))

    def stop(self):
        self.events.put(("stop", None))
        self.thread.join(timeout=30)
        try:
            _, stat = self.zk.get(self.path("workers", self.name))
            if format(stat.ephemeralOwner, "x") == self.session:
                self.zk.delete(self.path("workers", self.name), version=stat.version)
        except NoNodeError:
            pass

    # ---- the loop -------------------------------------------------------------------------------

    def _loop(self):
        seen_inbox = set()
        while True:
            kind, value = self.events.get()
            if kind == "stop":
                self.stopping = True
                for entry in self.held.values():
                    if entry["proc"] is not None and entry["proc"].poll() is None:
                        os.killpg(entry["proc"].pid, signal.SIGKILL)
                return
            if kind == "assign" and value is not None:
                self._on_assignment(decode(value))
            elif kind == "inbox":
                for name in value:
                    if name not in seen_inbox:
                        seen_inbox.add(name)
                        self._on_direct(name)
                for name in list(seen_inbox - set(value)):
                    seen_inbox.discard(name)
                    self._on_direct_gone(name)
            elif kind == "ended":
                self._on_ended(*value)
            elif kind == "hand_back":
                self._hand_back(value)

    def _on_assignment(self, a):
        if a.get("v") != 1 or a["worker"] != self.name or a["session"] != self.session:
            return
        if a["epoch"] < self.max_epoch:
            return
        self.max_epoch = a["epoch"]
        self.assignment_seen.set()
        listed = {(t["id"], t["attempt"]): t for t in a["tasks"]}
        self.assigned_ever.update(t["id"] for t in a["tasks"])
        for key, entry in list(self.held.items()):
            if key in listed or entry["direct"] is not None:
                continue
            del self.held[key]
            if entry["final_written"]:
                self.cleaned_up.append(key[0])  # clean-up after the result
            else:
                # It left before its final status: cancelled, unless it ended by itself meanwhile.
                entry["cancelled"] = True
                entry["final_written"] = True
                proc = entry["proc"]
                if proc.poll() is None:
                    self.cancelled.append(key[0])
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait()
                    state = "cancelled"
                else:
                    state = "succeeded" if proc.returncode == 0 else "failed"
                self._report([self._final(key, entry, state, proc)])
        for key, task in listed.items():
            if key not in self.held and not self.draining:  # a stopping worker starts nothing new
                self._start(key, task["spec"], None)

    def _start(self, key, spec, direct):
        task_id, attempt = key
        env = {**os.environ, "ZKGRID_TASK_ID": task_id, "ZKGRID_TASK_ATTEMPT": str(attempt),
               "ZKGRID_WORKER": self.name}
        proc = subprocess.Popen(
            ["/bin/sh", "-c", spec["cmd"]],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        entry = {"proc": proc, "final_written": False, "startedAt": now_ms(), "direct": direct, "out": None}
        self.held[key] = entry
        if direct is None:
            self._report([{"id": task_id, "attempt": attempt, "state": "running", "at": entry["startedAt"],
                           "startedAt": entry["startedAt"]}])

        def run():
            out, err = proc.communicate()
            entry["out"] = (out, err)
            self.events.put(("ended", (key, entry)))

        threading.Thread(target=run, daemon=True).start()

    def _final(self, key, entry, state, proc):
        task_id, attempt = key
        finished = now_ms()
        update = {"id": task_id, "attempt": attempt, "state": state, "at": finished,
                  "startedAt": entry["startedAt"], "finishedAt": finished}
        if proc is not None:
            code = proc.returncode
            if code is not None and code < 0:
                update["signal"] = signal.Signals(-code).name
            elif code is not None:
                update["exitCode"] = code
            out, err = entry["out"] or (b"", b"")
            update["stdoutTail"] = tail(out)
            update["stderrTail"] = tail(err)
        return update

    def _on_ended(self, key, entry):
        if entry.get("cancelled") or self.stopping:
            return
        code = entry["proc"].returncode
        state = "succeeded" if code == 0 else "failed"
        update = self._final(key, entry, state, entry["proc"])
        entry["final_written"] = True
        if entry["direct"] is not None:
            self._answer(key, entry, update)
            return
        self._report([update])
        if key[0] in self.duplicate_finals:
            self._report([update])  # as a retry after a lost reply would

    def _hand_back(self, task_id):
        self.draining = True
        for key, entry in self.held.items():
            if key[0] != task_id or entry["final_written"]:
                continue
            entry["cancelled"] = True  # its end is not a result
            entry["final_written"] = True
            if entry["proc"].poll() is None:
                os.killpg(entry["proc"].pid, signal.SIGKILL)
                entry["proc"].wait()
            self._report([{"id": task_id, "attempt": key[1], "state": "returned", "at": now_ms(),
                           "startedAt": entry["startedAt"]}])

    def _report(self, updates):
        report = {"v": 1, "worker": self.name, "session": self.session, "updates": updates}
        if self.draining:
            report["draining"] = True
        while True:
            try:
                self.zk.create(f"{self.report_dir}/r", encode(report), sequence=True)
                self.reported.extend(updates)
                return
            except ConnectionLoss:
                time.sleep(0.2)  # no protected prefix: a second copy is harmless

    # ---- direct tasks ---------------------------------------------------------------------------

    def _on_direct(self, name):
        path = f"{self.inbox_dir}/{name}"
        try:
            data, stat = self.zk.get(path)
        except NoNodeError:
            return
        self.inbox_versions.setdefault(path, []).append(stat.version)
        try:
            node = decode(data)
        except (UnicodeDecodeError, ValueError):
            return  # not a task: the leader's to judge
        tasks = node.get("tasks") if isinstance(node, dict) else None
        if stat.version != 0 or not isinstance(tasks, list) or len(tasks) != 1 or tasks[0].get("id") != name:
            return
        task = tasks[0]
        if not set(task.get("labels", [])) <= set(self.labels):
            self.zk.set(path, data, version=0)  # declined: the same bytes, back under version 0
            self.declined.append(name)
            return
        direct = {"path": path, "submittedAt": node["submittedAt"], "assignedAt": stat.ctime,
                  "meta": task.get("meta")}
        self._start((name, 1), task, direct)

    def _on_direct_gone(self, name):
        entry = self.held.get((name, 1))
        if entry is None or entry["direct"] is None or entry["final_written"]:
            return
        entry["cancelled"] = True  # its node was deleted: cancelled; it gets no answer
        self.cancelled.append(name)
        if entry["proc"].poll() is None:
            os.killpg(entry["proc"].pid, signal.SIGTERM)

    def _answer(self, key, entry, update):
        direct = entry["direct"]
        status = {"v": 1, "id": key[0], "state": update["state"], "attempt": 1, "worker": self.name,
                  "submittedAt": direct["submittedAt"], "assignedAt": direct["assignedAt"]}
        for field in ("startedAt", "finishedAt", "exitCode", "signal", "stdoutTail", "stderrTail"):
            if field in update:
                status[field] = update[field]
        if direct["meta"] is not None:
            status["meta"] = direct["meta"]
        try:
            self.zk.set(direct["path"], encode(status), version=0)
        except (BadVersionError, NoNodeError):
            pass  # the leader or another client got there first: the answer is dropped
        del self.held[key]
