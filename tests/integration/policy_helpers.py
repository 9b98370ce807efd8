"""Glue shared by the policy, audit and PROXY protocol tests
(test_policy_*.py, test_audit_journal.py, test_proxy_protocol.py):
clients bound to a chosen loopback source address, one-shot message
submission, and the audit records read back from the daemon's stderr.

Every wait here is bounded; nothing here starts a process.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import conftest
from conftest import USERS
from harness import REPLY_TIMEOUT, SMTPRaw, check, require

CRLF = b"\r\n"

# A second loopback address: Linux routes all of 127.0.0.0/8 to lo, so a
# client socket bound to it reaches the daemon on 127.0.0.1 from an
# address of its own (another "client IP" for limits and logs).
OTHER_IP = "127.0.0.2"
THIRD_IP = "127.0.0.3"


def tcp_from(port, source_ip, host="127.0.0.1", timeout=REPLY_TIMEOUT):
    """A TCP connection to host:port whose source address is source_ip."""
    return socket.create_connection((host, port), timeout=timeout,
                                    source_address=(source_ip, 0))


def connect_from(d, source_ip, implicit_tls=False, greeting=True):
    """Like Daemon.connect(), from source_ip."""
    port = d.tls_port if implicit_tls else d.starttls_port
    return SMTPRaw(port, sock=tcp_from(port, source_ip),
                   tls_context=d.tls_context if implicit_tls else None,
                   greeting=greeting)


def session_from(d, source_ip, ehlo="client.example.org"):
    """Connected from source_ip on the STARTTLS port, TLS up, EHLO sent."""
    c = connect_from(d, source_ip)
    c.ehlo(ehlo)
    c.starttls(d.tls_context)
    c.ehlo(ehlo)
    return c


def authed_from(d, source_ip, user="alice", password=None):
    c = session_from(d, source_ip)
    r = c.auth_plain(user, USERS[user] if password is None else password)
    check(r, 235, "2.7.0", what=f"AUTH PLAIN as {user} from {source_ip}")
    return c


def marker():
    """A unique token to find one message at the smarthost."""
    return "m-" + uuid.uuid4().hex


def message(from_header=b"Alice <alice@example.com>", mark="",
            headers=b"", body=b"Hello.\r\n"):
    """A message: From: (bytes; None for none), To:, Subject: with the
    marker, Message-ID:, extra header lines (CRLF-terminated), body."""
    if isinstance(from_header, str):
        from_header = from_header.encode("utf-8")
    out = b""
    if from_header is not None:
        out += b"From: " + from_header + CRLF
    out += (b"To: Bob <bob@example.net>\r\n"
            b"Subject: test " + mark.encode() + b"\r\n"
            b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
            b"Message-ID: <" + mark.encode() + b"@client.example.org>\r\n")
    return out + headers + CRLF + body


class Outcome:
    """What the client was told for one transaction: the reply that
    ended it (MAIL, the last RCPT, or the end of data) and at which
    stage."""

    def __init__(self, stage, reply):
        self.stage = stage
        self.reply = reply

    @property
    def code(self):
        return self.reply.code

    def __repr__(self):
        return f"{self.stage}: {self.reply.first_line!r}"


def transact(c, mail_from, rcpts=("bob@example.net",), data=None,
             mail_params=""):
    """MAIL, RCPT..., DATA, message, end of data; stops at the first
    refusal. mail_from without angle brackets ("" is the null sender)."""
    r = c.cmd(f"MAIL FROM:<{mail_from}>{mail_params}")
    if r.code != 250:
        return Outcome("MAIL", r)
    for rcpt in rcpts:
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        if r.code != 250:
            return Outcome("RCPT", r)
    r = c.cmd("DATA")
    if r.code != 354:
        return Outcome("DATA", r)
    data = data if data is not None else message()
    if not data.endswith(CRLF):
        data += CRLF
    c.send(data + b".\r\n")
    return Outcome("end of data", c.read_reply())


# --------------------------------------------------------------------------
# Audit records on stderr: "authrelay[PID]: LEVEL: EVENT key=value ..."

_RECORD = re.compile(r"^authrelay\[(\d+)\]: (\w+): (\S+)((?: .*)?)$")
_KV = re.compile(r' ([A-Za-z0-9_]+)=("(?:[^"\\]|\\.)*"|[^ ]*)')


def kv_pairs(text):
    """' k=v k2="quoted \\"value\\""' -> [(k, v), ...] (values unquoted),
    in order; a key may come more than once."""
    out = []
    pos = 0
    while pos < len(text):
        m = _KV.match(text, pos)
        if not m:
            raise AssertionError(f"audit fields do not split at {pos}: "
                                 f"{text!r}")
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        out.append((m.group(1), v))
        pos = m.end()
    return out


def parse_kv(text):
    """' k=v k2="quoted \\"value\\""' -> dict (values unquoted)."""
    return dict(kv_pairs(text))


def field_values(rec, key):
    """Every value of key in a Record, in order (a message record has a
    to= field per recipient)."""
    m = _RECORD.match(rec.line)
    return [v for k, v in kv_pairs(m.group(4)) if k == key]


class Record(dict):
    def __init__(self, pid, level, event, fields, line):
        super().__init__(fields)
        self.pid = pid
        self.level = level
        self.event = event
        self.line = line


def audit_records(log, event=None):
    """The audit records in a stderr log (other lines ignored)."""
    out = []
    for line in log.splitlines():
        m = _RECORD.match(line)
        if not m:
            continue
        try:
            fields = parse_kv(m.group(4))
        except AssertionError:
            continue
        rec = Record(int(m.group(1)), m.group(2), m.group(3), fields, line)
        if event is None or rec.event == event:
            out.append(rec)
    return out


def wait_record(d, event, timeout=10, **match):
    """The first audit record of event whose fields include match."""
    deadline = time.monotonic() + timeout
    while True:
        for rec in audit_records(d.log(), event):
            if all(rec.get(k) == v for k, v in match.items()):
                return rec
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"no {event} record with {match} within {timeout} s; "
                f"log:\n{d.log()}")
        time.sleep(0.05)


# --------------------------------------------------------------------------
# Which serving thread has a session

def _task_writes(pid):
    """tid -> write(2) calls so far (/proc/PID/task/TID/io syscw)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/io") as f:
                for line in f:
                    if line.startswith("syscw:"):
                        out[int(tid)] = int(line.split()[1])
        except OSError:
            pass
    return out


def serving_thread(d, c):
    """The thread (tid) of the daemon that serves the authenticated
    session c: the one that writes the reply to a NOOP (TLS records go
    out with write(2), which the task's syscw counts). Another thread
    may write at the same time (the log line of a session that just
    ended): the serving thread is the one that wrote on each of up to
    five NOOPs. None if that is still not clear."""
    candidates = None
    for _ in range(5):
        before = _task_writes(d.net_pid)
        check(c.cmd("NOOP"), 250, "2.0.0", "NOOP")
        after = _task_writes(d.net_pid)
        wrote = {t for t in after if t in before and after[t] > before[t]}
        candidates = wrote if candidates is None else candidates & wrote
        if len(candidates) <= 1:
            break
    return next(iter(candidates)) if len(candidates) == 1 else None


def sessions_on_two_threads(d, make, per_thread=2, max_sessions=64):
    """Open sessions with make() until at least per_thread of them are
    served by each of two different threads; returns {tid: [sessions]}
    (the extra sessions are closed). Fails if the daemon keeps putting
    them on one thread."""
    by_thread = {}
    for _ in range(max_sessions):
        c = make()
        tid = serving_thread(d, c)
        if tid is None or len(by_thread.get(tid, [])) >= per_thread:
            # Not needed: closed at once, so the open sessions stay far
            # below max_connections_per_ip however many tries it takes.
            c.close()
        else:
            by_thread.setdefault(tid, []).append(c)
        if len(by_thread) >= 2 and \
                sum(len(v) >= per_thread for v in by_thread.values()) >= 2:
            break
    full = [t for t, v in by_thread.items() if len(v) >= per_thread]
    assert len(full) >= 2, \
        f"{max_sessions} sessions, but not {per_thread} on each of two " \
        f"threads: {({t: len(v) for t, v in by_thread.items()})}"
    return {t: by_thread[t] for t in full[:2]}


# --------------------------------------------------------------------------
# A private systemd-journald, and the daemon logging to it

JOURNALD = "/lib/systemd/systemd-journald"

# The daemon runs under this wrapper (as conftest's AUTHRELAY_BIN): it
# enters journald's mount namespace, connects its stderr to journald's
# stdout stream the way systemd does for a service (the stream header,
# then JOURNAL_STREAM=dev:ino of that socket), and execs the daemon.
_WRAPPER = r'''#!/usr/bin/python3
import os, socket, sys
REAL = {real!r}
if os.environ.get("AR_JOURNAL_ENTERED") != "1":
    os.environ["AR_JOURNAL_ENTERED"] = "1"
    os.execv({nsenter!r}, ["nsenter", "--mount=" + os.environ["AR_JOURNAL_NS"],
                           "--", sys.executable, __file__] + sys.argv[1:])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("/run/systemd/journal/stdout")
# identifier, unit id, priority, level prefix, forward to syslog, kmsg,
# console (systemd's journal stream protocol)
s.sendall(b"authrelay\n\n6\n1\n0\n0\n0\n")
s.shutdown(socket.SHUT_RD)
st = os.fstat(s.fileno())
os.dup2(s.fileno(), 2)
s.close()
for k in ("AR_JOURNAL_ENTERED", "AR_JOURNAL_NS"):
    os.environ.pop(k, None)
os.environ["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
os.execv(REAL, [REAL] + sys.argv[1:])
'''


class PrivateJournal:
    """systemd-journald in a mount namespace of its own (unshare -m, a
    tmpfs on /run): it works as root without systemd as PID 1, and
    nothing of the host's /run is touched."""

    def __init__(self, workdir, unshare, nsenter, journalctl):
        self.workdir = Path(workdir)
        self.unshare = unshare
        self.nsenter = nsenter
        self.journalctl = journalctl
        self.proc = None
        self.log_path = self.workdir / "journald.log"

    @property
    def ns(self):
        return f"/proc/{self.proc.pid}/ns/mnt"

    def path(self, p):
        """A path inside the namespace, seen from outside."""
        return f"/proc/{self.proc.pid}/root{p}"

    def start(self, timeout=10):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.unshare, "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs -o mode=0755 tmpfs /run && "
             "mkdir -p /run/systemd/journal && exec " + JOURNALD],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        want = [self.path("/run/systemd/journal/stdout"),
                self.path("/run/systemd/journal/socket")]
        while not all(os.path.exists(p) for p in want):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"systemd-journald did not come up: "
                    f"{self.log_path.read_text(errors='replace')}")
            time.sleep(0.05)

    def wrapper(self, real_bin):
        w = self.workdir / "authrelay-in-journal"
        w.write_text(_WRAPPER.format(real=str(real_bin),
                                     nsenter=self.nsenter))
        w.chmod(0o755)
        return w

    def run(self, *args, timeout=30):
        """journalctl ARGS inside the namespace -> stdout (bytes)."""
        r = subprocess.run([self.nsenter, f"--mount={self.ns}", "--",
                            self.journalctl, "--no-pager", *args],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
        assert r.returncode == 0, \
            f"journalctl {args}: exit {r.returncode}: {r.stderr!r}"
        return r.stdout

    def entries(self, *match):
        """All entries (journalctl -o json), optionally with matches
        such as "AUTHRELAY_EVENT=message"; values decoded to str."""
        out = []
        for line in self.run("-o", "json", *match).splitlines():
            if not line.strip():
                continue
            e = json.loads(line)
            for k, v in e.items():
                if isinstance(v, list) and v and isinstance(v[0], int):
                    e[k] = bytes(v).decode("utf-8", "replace")
            out.append(e)
        return out

    def wait_entry(self, timeout=10, **fields):
        deadline = time.monotonic() + timeout
        while True:
            for e in self.entries():
                if all(e.get(k) == v for k, v in fields.items()):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no journal entry with {fields} within {timeout} s; "
                    f"authrelay's entries:\n" + "\n".join(
                        str(e.get("MESSAGE")) for e in self.entries(
                            "SYSLOG_IDENTIFIER=authrelay")))
            time.sleep(0.1)

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def journal(tmp_path, monkeypatch):
    """A PrivateJournal, running; daemons that the authrelay fixture
    starts during the test run under its wrapper (start them with
    start_in_journal)."""
    unshare = require("unshare", "unshare (util-linux)")
    nsenter = require("nsenter", "nsenter (util-linux)")
    journalctl = require("journalctl", "journalctl (systemd)")
    require(JOURNALD, "systemd-journald (Debian package systemd)")
    j = PrivateJournal(tmp_path, unshare, nsenter, journalctl)
    j.start()
    monkeypatch.setattr(conftest, "AUTHRELAY_BIN",
                        j.wrapper(conftest.AUTHRELAY_BIN))
    yield j
    j.stop()


def start_in_journal(authrelay, journal, config=None, **kw):
    """The daemon, its stderr connected to the private journald."""
    return authrelay(config=config, env={"AR_JOURNAL_NS": journal.ns}, **kw)
