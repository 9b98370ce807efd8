"""Several nodes, one policy ([policy] shared_state; issue 12): two
authrelay instances behind a real HAProxy (round robin, PROXY v2) and a
real redis-server (Debian package redis-server) that the test starts on
127.0.0.1 with a password, never the system service.

- user_rate, user_recipient_rate and group_rate hold for the service,
  not per node: N messages in all, however the sessions are spread;
- an address blocked on one node is refused (421) on the other;
- a failed login on one node, and a reload of one node, drop the cached
  credential on the other (its next login reaches PAM: cached=no);
- Redis gone or stopped: with shared_state_failure = open the sessions
  go on with each node's own tables, with closed MAIL gets 451 4.7.0 and
  AUTH 454 4.7.0; once Redis is back, counting is shared again; a
  stopped (SIGSTOP) Redis is bounded by shared_state_timeout;
- a wrong Redis password is logged, once per reconnect interval;
- Redis holds no user name or address in clear.
"""

import os
import signal
import socket
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import USERS, run_preflight
from harness import SMTPRaw, check, free_port, require
from policy_helpers import OTHER_IP, THIRD_IP, audit_records, wait_record
from test_proxy_protocol import (DEFAULTS, backend, frontend,  # noqa: F401
                                 haproxy)

PASSWORD = "r3dis-Sh4red-secret"
CLIENT_IP = OTHER_IP
WAIT = 15.0


class Redis:
    """redis-server in the foreground on 127.0.0.1 with a password and
    no persistence; stop/start keep the port, pause/resume are SIGSTOP
    and SIGCONT."""

    def __init__(self, workdir):
        self.bin = require("redis-server",
                           "redis-server (Debian package redis-server)")
        self.dir = workdir
        self.port = free_port()
        self.proc = None
        self.log_path = workdir / "redis.log"

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.bin, "--bind", "127.0.0.1", "--port", str(self.port),
             "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("redis-server did not start:\n" +
                                     self.log_path.read_text())
            time.sleep(0.05)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
        self.proc = None

    def pause(self):
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.killpg(self.proc.pid, signal.SIGCONT)

    def command(self, *args):
        """One command after AUTH, over RESP; the reply as a str, an
        int or a list of str."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            f = s.makefile("rb")
            for cmd in (("AUTH", PASSWORD), args):
                s.sendall(b"*%d\r\n" % len(cmd) + b"".join(
                    b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode())
                    for a in cmd))
                reply = self._read(f)
            return reply
        finally:
            s.close()

    def _read(self, f):
        line = f.readline().rstrip(b"\r\n").decode()
        kind, rest = line[:1], line[1:]
        if kind == "+":
            return rest
        if kind == "-":
            raise AssertionError(f"redis: {rest}")
        if kind == ":":
            return int(rest)
        if kind == "$":
            if int(rest) < 0:
                return None
            data = f.read(int(rest) + 2)[:-2]
            return data.decode()
        if kind == "*":
            return [self._read(f) for _ in range(int(rest))]
        raise AssertionError(f"redis: unexpected {line!r}")


@pytest.fixture
def redis(tmp_path):
    d = tmp_path / "redis"
    d.mkdir()
    r = Redis(d)
    r.start()
    yield r
    r.stop()


def wait_log(d, text, count=1, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while d.log().count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{d.name}: no {text!r} (x{count}) in "
                                 f"the log:\n{d.log()}")
        time.sleep(0.05)


def nodes(authrelay, redis, tmp_path, n=2, password=PASSWORD, nss=False,
          policy=None, per_node=None, auth=None):
    """n instances behind the PROXY protocol sharing redis; each has
    logged that every serving thread is connected."""
    secret = tmp_path / "redis.secret"
    secret.write_text(password + "\n")
    out = []
    for i in range(n):
        pol = {"sender_check": "off",
               "shared_state": f"redis://127.0.0.1:{redis.port}/0",
               "shared_state_password_file": str(secret),
               "shared_state_timeout": "300ms"}
        pol.update(policy or {})
        pol.update((per_node or [{}] * n)[i])
        conf = {"server": {"proxy_protocol": "yes", "threads": 2},
                "policy": pol, "auth": auth or {}}
        out.append(authrelay(config=conf, nss=nss))
    if password == PASSWORD:
        for d in out:
            wait_log(d, "connected")
    return out


def balanced(haproxy, daemons):
    """HAProxy round robin over the nodes' STARTTLS ports with PROXY v2;
    its port."""
    port = free_port()
    haproxy(DEFAULTS + frontend("submission", port, "nodes") +
            backend("nodes", [(f"n{i}", d.starttls_port)
                              for i, d in enumerate(daemons)],
                    "send-proxy-v2"), [port])
    return port


def proxy_v2(client_ip, port):
    """The PROXY v2 header HAProxy sends for a TCP4 client."""
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) +
            struct.pack("!H", 12) + socket.inet_aton(client_ip) +
            socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40000, port))


def direct(d, client_ip=CLIENT_IP):
    """A connection straight to node d, its PROXY v2 header naming
    client_ip (what HAProxy would send); the greeting read."""
    s = socket.create_connection(("127.0.0.1", d.starttls_port), timeout=10)
    s.sendall(proxy_v2(client_ip, d.starttls_port))
    return SMTPRaw(d.starttls_port, sock=s)


def via(port, client_ip=CLIENT_IP):
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(client_ip, 0))
    return SMTPRaw(port, sock=s)


def tls_up(c, ctx):
    c.ehlo()
    c.starttls(ctx)
    c.ehlo()
    return c


def login(c, ctx, user, password=None):
    tls_up(c, ctx)
    return c.auth_plain(user, USERS[user] if password is None else password)


def mail_code(c, ctx, user):
    """AUTH as user, then MAIL FROM: its reply."""
    check(login(c, ctx, user), 235, "2.7.0", f"AUTH as {user}")
    r = c.cmd(f"MAIL FROM:<{user}@example.com>")
    c.cmd("RSET")
    c.quit()
    return r


def codes(replies):
    """250 (the smarthost's own text), or (code, enhanced) of ours."""
    return [r.code if r.code == 250 else (r.code, r.enhanced)
            for r in replies]


def served(daemons, client_ip=CLIENT_IP):
    """How many sessions from client_ip each node saw."""
    return [sum(1 for r in audit_records(d.log(), "connect")
                if r.get("client") == client_ip) for d in daemons]


def test_rates_hold_across_both_nodes(authrelay, smarthost, haproxy, redis,
                                      tmp_path):
    """user_rate = 3/1h (bob), group_rate = 5/1h for mail-senders
    (alice, carol), user_recipient_rate = 4/1h (carol): counted once
    for the whole service, whichever node a session lands on."""
    daemons = nodes(authrelay, redis, tmp_path, nss=True, policy={
        "user_rate": "3/1h", "group_rate": "5/1h mail-senders",
        "user_recipient_rate": "4/1h"})
    port = balanced(haproxy, daemons)
    ctx = daemons[0].tls_context

    # Ten concurrent sessions as bob, spread over both nodes: three
    # messages in all, not three per node.
    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(lambda _: mail_code(via(port), ctx, "bob"),
                                range(10)))
    got = codes(replies)
    assert got.count(250) == 3 and got.count((450, "4.7.1")) == 7, \
        f"bob's MAIL replies: got {got}, want exactly three 250"
    per_node = served(daemons)
    assert all(n >= 3 for n in per_node), \
        f"sessions per node: {per_node}, want both nodes used"

    # The group's limit replaces user_rate, across nodes too.
    replies = [mail_code(via(port), ctx, "alice") for _ in range(7)]
    assert codes(replies) == [250] * 5 + [(450, "4.7.1")] * 2, \
        f"alice (group_rate 5): got {codes(replies)}"

    # Recipients: three sessions of three RCPTs each, four in all.
    rcpt = []
    for i in range(3):
        c = via(port)
        check(login(c, ctx, "carol"), 235, "2.7.0")
        check(c.cmd("MAIL FROM:<carol@example.com>"), 250)
        for j in range(3):
            rcpt.append(c.cmd(f"RCPT TO:<r{i}{j}@example.net>"))
        c.cmd("RSET")
        c.quit()
    got = [r.code for r in rcpt]
    assert got == [250] * 4 + [450] * 5, \
        f"carol's RCPT replies: got {got}, want four 250 then 450"
    assert all(r.enhanced == "4.7.1" for r in rcpt[4:])

    # Nothing in Redis names a user or an address in clear.
    keys = redis.command("KEYS", "*")
    assert keys and all(k.startswith("authrelay:") for k in keys), keys
    for k in keys:
        for clear in ("alice", "bob", "carol", CLIENT_IP):
            assert clear not in k, f"key {k!r} holds {clear!r}"


def test_address_blocked_on_one_node_is_refused_on_the_other(
        authrelay, smarthost, haproxy, redis, tmp_path):
    a, b = nodes(authrelay, redis, tmp_path,
                 auth={"max_failures_per_ip": 3, "failure_delay": "0"})
    ctx = a.tls_context
    c = direct(a)
    tls_up(c, ctx)
    for i in range(2):
        check(c.auth_plain("alice", f"wrong-{i}"), 535, "5.7.8")
    check(c.auth_plain("alice", "wrong-2"), 421, "4.7.0",
          "the failure that reaches max_failures_per_ip on node A")
    c.close()
    # Node B never saw a failure from this address, and refuses it.
    c = socket.create_connection(("127.0.0.1", b.starttls_port), timeout=10)
    c.sendall(proxy_v2(CLIENT_IP, b.starttls_port))
    data = c.recv(4096)
    c.close()
    assert data.startswith(b"421 4.7.0"), \
        f"node B greeting the address blocked on A: got {data!r}"
    wait_record(b, "client-refused", client=CLIENT_IP)
    # Through HAProxy: refused on both nodes; another address logs in.
    port = balanced(haproxy, [a, b])
    for i in range(2):
        s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=(CLIENT_IP, 0))
        data = s.recv(4096)
        s.close()
        assert data.startswith(b"421 4.7.0"), f"via HAProxy {i}: {data!r}"
    c = via(port, THIRD_IP)
    check(login(c, ctx, "alice"), 235, "2.7.0", "another address")
    c.quit()


def auth_ok(d):
    return [r.get("cached") for r in audit_records(d.log(), "auth-ok")]


def test_failed_login_and_reload_evict_cached_credentials_everywhere(
        authrelay, smarthost, redis, tmp_path):
    a, b = nodes(authrelay, redis, tmp_path,
                 auth={"cache_ttl": "5m", "failure_delay": "0"})
    ctx = a.tls_context

    def login_b(what):
        c = direct(b, THIRD_IP)
        check(login(c, ctx, "alice"), 235, "2.7.0", what)
        c.quit()
        return auth_ok(b)[-1]

    assert login_b("first login on B") == "no"
    assert login_b("second login on B") == "yes", "B caches alice"
    c = direct(a)
    check(login(c, ctx, "alice", "not-her-password"), 535, "5.7.8")
    c.quit()
    assert login_b("after a failed login on A") == "no", \
        "a failed login on node A must drop B's cached credential " \
        "(B asks PAM again)"
    assert login_b("again") == "yes"
    a.signal(signal.SIGHUP)
    wait_log(a, "configuration reloaded")
    deadline = time.monotonic() + WAIT
    # The reload's eviction reaches Redis from A's first thread.
    while True:
        got = login_b("after A reloaded")
        if got == "no" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got == "no", "a reload of node A must drop B's cache"


def bob_mail(d, client_ip=CLIENT_IP):
    return mail_code(direct(d, client_ip), d.tls_context, "bob")


def test_redis_gone_open_goes_on_locally_then_shares_again(
        authrelay, smarthost, redis, tmp_path):
    a, b = nodes(authrelay, redis, tmp_path, policy={"user_rate": "3/1h"})
    check(bob_mail(a), 250, None, "bob's first message, through Redis")
    redis.stop()
    for d in (a, b):
        wait_log(d, "unavailable")
    # Each node goes on with its own table: A has counted one already.
    got_a = codes([bob_mail(a) for _ in range(3)])
    got_b = codes([bob_mail(b) for _ in range(4)])
    assert got_a == [250] * 2 + [(450, "4.7.1")], got_a
    assert got_b == [250] * 3 + [(450, "4.7.1")], got_b
    for d in (a, b):
        assert d.log().count("unavailable") == 1, \
            f"{d.name}: the outage is logged once, not per call"
    redis.start()
    for d in (a, b):
        wait_log(d, "available again")
    # Redis came back empty: three more for the whole service.
    got = codes([bob_mail(d) for d in (a, b, a, b, a, b)])
    assert got == [250] * 3 + [(450, "4.7.1")] * 3, got


def test_redis_gone_closed_refuses_with_4xx(authrelay, smarthost, redis,
                                            tmp_path):
    (a,) = nodes(authrelay, redis, tmp_path, n=1,
                 policy={"user_rate": "3/1h",
                         "shared_state_failure": "closed"})
    ctx = a.tls_context
    c = direct(a)
    check(login(c, ctx, "bob"), 235, "2.7.0")
    redis.stop()
    wait_log(a, "unavailable")
    check(c.cmd("MAIL FROM:<bob@example.com>"), 451, "4.7.0",
          "MAIL with Redis gone, closed")
    check(c.cmd("NOOP"), 250, None, "the session goes on")
    c.quit()
    c = direct(a)
    check(login(c, ctx, "bob"), 454, "4.7.0", "AUTH with Redis gone")
    c.quit()
    redis.start()
    wait_log(a, "available again")
    check(bob_mail(a), 250, None, "Redis back")


def test_stopped_redis_is_bounded_by_the_timeout(authrelay, smarthost, redis,
                                                 tmp_path):
    a, b = nodes(authrelay, redis, tmp_path, policy={"user_rate": "3/1h"},
                 per_node=[{"shared_state_failure": "open"},
                           {"shared_state_failure": "closed"}])
    ctx = a.tls_context
    ca, cb = direct(a), direct(b)
    check(login(ca, ctx, "bob"), 235, "2.7.0")
    check(login(cb, ctx, "bob"), 235, "2.7.0")
    redis.pause()
    try:
        # Redis takes the bytes and never answers: each node answers
        # after shared_state_timeout, as its failure mode says.
        check(ca.cmd("MAIL FROM:<bob@example.com>"), 250, None, "open")
        check(cb.cmd("MAIL FROM:<bob@example.com>"), 451, "4.7.0", "closed")
        ca.cmd("RSET")
        cb.cmd("RSET")
        check(ca.cmd("NOOP"), 250)
        check(cb.cmd("NOOP"), 250)
    finally:
        redis.resume()
    for d in (a, b):
        wait_log(d, "available again")
    check(cb.cmd("MAIL FROM:<bob@example.com>"), 250, None,
          "closed node, Redis answering again")
    ca.quit()
    cb.quit()


def test_wrong_password_is_logged_once_per_interval(authrelay, smarthost,
                                                    redis, tmp_path):
    (a,) = nodes(authrelay, redis, tmp_path, n=1, password="not-it",
                 policy={"user_rate": "3/1h"})
    wait_log(a, "refused the password")
    # Both threads retry every 100 ms, doubling: several refusals, one
    # line until the 5 s reconnect interval has passed.
    time.sleep(2)
    assert a.log().count("refused the password") == 1, a.log()
    # Open: the node serves on its own table meanwhile.
    check(bob_mail(a), 250, None, "open, Redis refusing the password")


# -- the pre-flight ----------------------------------------------------------

def preflight_shared_lines(config_for_check, tmp_path, redis, password):
    """authrelay --check on a config sharing redis with password: its
    shared_state line(s) and the exit status."""
    secret = tmp_path / f"redis-{len(password)}.secret"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    path, _ = config_for_check({"policy": {
        "shared_state": f"redis://127.0.0.1:{redis.port}/1",
        "shared_state_password_file": str(secret)}})
    r = run_preflight(path)
    lines = [f"{level} {text}" for level, text in r.lines
             if text.startswith("shared_state")]
    return r.returncode, lines, r.stdout + r.stderr


def test_preflight_reports_redis(config_for_check, tmp_path, redis):
    """The pre-flight connects with the password the nodes would use: a
    wrong one is a FAIL line that says so (-t cannot know); the right one
    is ok."""
    rc, lines, out = preflight_shared_lines(config_for_check, tmp_path,
                                            redis, "not-the-password")
    assert len(lines) == 1 and lines[0].startswith("FAIL"), out
    assert "AUTH" in lines[0] and "shared_state_password_file" in lines[0], \
        lines[0]
    assert "not-the-password" not in out, "the password was printed"
    assert rc == 1, out
    rc, lines, out = preflight_shared_lines(config_for_check, tmp_path,
                                            redis, PASSWORD)
    assert len(lines) == 1 and lines[0].startswith("ok"), out
    assert "password accepted" in lines[0] and "database 1" in lines[0], \
        lines[0]
    # Redis down: a FAIL with the reason.
    redis.stop()
    rc, lines, out = preflight_shared_lines(config_for_check, tmp_path,
                                            redis, PASSWORD)
    assert len(lines) == 1 and lines[0].startswith("FAIL") and \
        "cannot connect" in lines[0], out
    assert rc == 1
