"""[server] metrics_listen (issue 11): Prometheus text at GET /metrics on a
listener of the network process's main loop. promtool accepts what it
serves; each counter moves by exactly what the test drives (logins,
messages, refusals, a smarthost that is down, auth workers); scraping
during a load of sessions stalls none of them; anything but GET /metrics
is refused, an over-long request cut, and every answer closes the
connection."""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import USERS
from harness import check, free_port, require
from smarthost import SENDER, USER, message, relay_config, submit

pytest_plugins = ["smarthost"]

SCRAPE_TIMEOUT = 10.0


def http(port, request, timeout=SCRAPE_TIMEOUT):
    """Send request (bytes) to 127.0.0.1:port, read to EOF: returns
    (status code, header text, body text). EOF is part of the contract:
    the responder closes after every answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            assert len(data) < 1 << 20, "answer over 1 MiB"
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no end of the answer's head in {data[:200]!r}"
    status = head.split(b"\r\n", 1)[0].decode()
    assert status.startswith("HTTP/1.1 "), f"got status line {status!r}"
    return int(status.split()[1]), head.decode(), body.decode()


def scrape(port):
    code, head, body = http(port, b"GET /metrics HTTP/1.1\r\n"
                                  b"Host: 127.0.0.1\r\n\r\n")
    assert code == 200, f"GET /metrics: got {code}, want 200\n{head}"
    assert "text/plain; version=0.0.4" in head, head
    return body


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


class Metrics:
    def __init__(self, port):
        self.port = port
        self.last = samples(scrape(port))

    def delta(self):
        """{key: change} since the previous call, zero changes left out."""
        now = samples(scrape(self.port))
        d = {k: v - self.last.get(k, 0) for k, v in now.items()
             if v != self.last.get(k, 0)}
        self.last = now
        return d

    def wait_for(self, key, want, timeout=10.0):
        """Scrape until key reaches want (events the network process
        learns of asynchronously, like a worker's death)."""
        deadline = time.monotonic() + timeout
        while True:
            now = samples(scrape(self.port))
            if now.get(key, 0) >= want or time.monotonic() > deadline:
                return now.get(key, 0)
            time.sleep(0.05)


def expect_delta(got, want, what):
    assert got == want, (f"{what}: got counter changes\n  {sorted(got.items())}"
                         f"\nwant\n  {sorted(want.items())}")


def start(authrelay, config=None, **kw):
    port = free_port()
    conf = {"server": {"metrics_listen": f"127.0.0.1:{port}", "threads": 1}}
    for section, keys in (config or {}).items():
        conf.setdefault(section, {}).update(keys)
    d = authrelay(config=conf, **kw)
    d.metrics_port = port
    return d


def smarthost_host(d):
    return d.config["relay"]["smarthost"]


# --------------------------------------------------------------------------
# The format

def test_promtool_accepts_the_output(authrelay, tmp_path):
    promtool = require("promtool", "promtool (Debian package prometheus)")
    d = start(authrelay)
    c = d.authed(USER)          # every labelled family gets a sample
    check(submit(c, message()), 250, "2.0.0", "a relayed message")
    c.quit()
    text = scrape(d.metrics_port)
    (tmp_path / "metrics.txt").write_text(text)
    r = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (
        f"promtool check metrics: exit {r.returncode}\n{r.stdout}"
        f"{r.stderr}")


# --------------------------------------------------------------------------
# Counters move by what the sessions do

def test_relayed_message_counts(authrelay):
    d = start(authrelay)
    m = Metrics(d.metrics_port)
    listener = f"127.0.0.1:{d.starttls_port}"
    host = smarthost_host(d)
    msg = message(b"counted\r\n")
    c = d.authed(USER)
    check(submit(c, msg, rcpts=("bob@example.net", "carol@example.net")),
          250, "2.0.0", "message to two recipients")
    c.quit()
    got = m.delta()
    got.pop("authrelay_sessions_active", None)  # QUIT's close may lag
    spawns = got.pop("authrelay_auth_worker_spawns_total", 0)
    assert spawns <= 1, f"auth worker spawns: got {spawns}, want 0 or 1"
    expect_delta(got, {
        f'authrelay_sessions_total{{listener="{listener}"}}': 1,
        'authrelay_tls_handshakes_total{peer="client"}': 1,
        'authrelay_auth_total{backend="pam",result="ok"}': 1,
        # cache_ttl = 0: no cache look-up; one request to a worker
        'authrelay_auth_duration_seconds_count': 1,
        'authrelay_auth_duration_seconds_bucket{le="+Inf"}': 1,
        'authrelay_messages_relayed_total': 1,
        'authrelay_recipients_total': 2,
        'authrelay_message_bytes_total': len(msg),
        'authrelay_relay_duration_seconds_count': 1,
        'authrelay_relay_duration_seconds_bucket{le="+Inf"}': 1,
        f'authrelay_smarthost_connections_total{{host="{host}"}}': 1,
    } | {k: v for k, v in got.items()
         # the buckets and sums a duration falls in: not the test's to fix
         if (k.endswith("_sum") or "_bucket{" in k) and "+Inf" not in k},
        "one session, one message")


def test_login_results_by_reason(authrelay):
    d = start(authrelay, config={"auth": {"require_group": "mail-senders"}},
              nss=True)
    m = Metrics(d.metrics_port)
    ok = 'authrelay_auth_total{backend="pam",result="ok"}'
    bad = 'authrelay_auth_total{backend="pam",result="bad_credentials"}'
    group = 'authrelay_auth_total{backend="pam",result="not_in_group"}'
    cases = [
        ("alice", USERS["alice"], 235, ok),
        ("alice", "wrong", 535, bad),
        ("bob", USERS["bob"], 535, group),     # right password, no group
        ("nosuchuser", "x", 535, bad),
    ]
    for user, password, code, key in cases:
        with d.session() as c:
            check(c.auth_plain(user, password), code, None, user)
        got = {k: v for k, v in m.delta().items()
               if k.startswith("authrelay_auth_total")}
        expect_delta(got, {key: 1}, f"AUTH as {user!r}, reply {code}")


def test_cache_hits_and_misses(authrelay):
    d = start(authrelay, config={"auth": {"cache_ttl": "60s"}})
    m = Metrics(d.metrics_port)
    for what, want in (("first login", "misses"), ("second", "hits")):
        d.authed(USER).quit()
        got = {k: v for k, v in m.delta().items()
               if k.startswith(("authrelay_auth_cache",
                                "authrelay_auth_duration_seconds_count"))}
        exp = {f"authrelay_auth_cache_{want}_total": 1}
        if want == "misses":
            exp["authrelay_auth_duration_seconds_count"] = 1
        expect_delta(got, exp, what)


def test_refused_message_counts_by_reason(authrelay):
    d = start(authrelay, config={"policy": {"sender_check": "envelope"}})
    m = Metrics(d.metrics_port)
    c = d.authed(USER)
    check(c.cmd("MAIL FROM:<mallory@example.org>"), 553, "5.7.1",
          "a sender alice does not own")
    check(c.cmd(f"MAIL FROM:<{SENDER}> SIZE=999999999999"), 552, "5.3.4",
          "SIZE past the limit")
    c.quit()
    got = {k: v for k, v in m.delta().items()
           if k.startswith("authrelay_messages")}
    expect_delta(got, {
        'authrelay_messages_refused_total{reason="sender"}': 1,
        'authrelay_messages_refused_total{reason="size"}': 1,
    }, "two refused transactions")


def test_smarthost_down_counts(authrelay):
    port = free_port()          # nothing listens there
    d = start(authrelay, config=relay_config(port))
    m = Metrics(d.metrics_port)
    host = f"127.0.0.1:{port}"
    c = d.authed(USER)
    for i in range(2):
        check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1",
              f"MAIL {i + 1} with the smarthost down")
    c.quit()
    got = {k: v for k, v in m.delta().items()
           if k.startswith(("authrelay_messages", "authrelay_smarthost"))}
    expect_delta(got, {
        f'authrelay_smarthost_failures_total{{host="{host}"}}': 2,
        'authrelay_messages_refused_total{reason="smarthost_unavailable"}': 2,
    }, "two MAILs, no smarthost")


def test_failover_counts_on_the_second_smarthost(smarthosts, authrelay):
    down = free_port()
    sh = smarthosts()
    d = start(authrelay, config=relay_config(down, sh))
    m = Metrics(d.metrics_port)
    c = d.authed(USER)
    check(submit(c, message()), 250, "2.0.0", "relayed by the second")
    c.quit()
    got = {k: v for k, v in m.delta().items()
           if k.startswith("authrelay_smarthost")}
    expect_delta(got, {
        f'authrelay_smarthost_failures_total{{host="127.0.0.1:{down}"}}': 1,
        f'authrelay_smarthost_connections_total{{host="{sh.address}"}}': 1,
        f'authrelay_smarthost_failovers_total{{host="{sh.address}"}}': 1,
    }, "first smarthost down, second takes the message")


def test_worker_spawns_and_deaths(authrelay):
    d = start(authrelay)
    m = Metrics(d.metrics_port)
    d.authed(USER).quit()
    expect_delta({k: v for k, v in m.delta().items() if "worker" in k},
                 {"authrelay_auth_worker_spawns_total": 1}, "first login")
    pids = d.worker_pids()
    assert len(pids) == 1, f"auth workers: got {pids}, want one"
    os.kill(pids[0], signal.SIGKILL)
    deaths = m.wait_for("authrelay_auth_worker_deaths_total",
                        m.last.get("authrelay_auth_worker_deaths_total", 0) + 1)
    d.authed(USER).quit()       # a new worker answers
    got = {k: v for k, v in m.delta().items() if "worker" in k}
    expect_delta(got, {"authrelay_auth_worker_spawns_total": 1,
                       "authrelay_auth_worker_deaths_total": 1},
                 f"a worker killed (deaths now {deaths}), another login")


# --------------------------------------------------------------------------
# Scraping does not stall the sessions

N_CLIENTS = 8
MESSAGES_EACH = 5


def test_scraping_during_load_stalls_no_session(authrelay):
    d = start(authrelay, config={"server": {"threads": 2}})
    m = Metrics(d.metrics_port)
    replies = {i: [] for i in range(N_CLIENTS)}
    errors = []

    def client(i):
        try:
            c = d.authed(USER)
            for _ in range(MESSAGES_EACH):
                replies[i].append(submit(c, message()).code)
            c.quit()
        except Exception as e:          # reported below, with the rest
            errors.append(f"client {i}: {e!r}")

    # Scrapers that connect and then say nothing hold connections the
    # whole time (all but one slot): the SMTP loops must not care.
    idle = [socket.create_connection(("127.0.0.1", d.metrics_port))
            for _ in range(7)]
    clients = [threading.Thread(target=client, args=(i,))
               for i in range(N_CLIENTS)]
    for t in clients:
        t.start()
    scrapes = 0
    while any(t.is_alive() for t in clients) and scrapes < 2000:
        samples(scrape(d.metrics_port))
        scrapes += 1
    for t in clients:
        t.join(timeout=120)
    for s in idle:
        s.close()
    assert not errors, "\n".join(errors)
    assert all(replies[i] == [250] * MESSAGES_EACH for i in replies), (
        f"got replies {replies}, want {MESSAGES_EACH} times 250 each")
    assert scrapes > 0, "no scrape completed during the load"
    got = m.delta()
    assert got.get("authrelay_messages_relayed_total") == \
        N_CLIENTS * MESSAGES_EACH, (
            f"messages relayed: got {got.get('authrelay_messages_relayed_total')}"
            f", want {N_CLIENTS * MESSAGES_EACH}")


# --------------------------------------------------------------------------
# Only GET /metrics

@pytest.mark.parametrize("request_bytes, want", [
    (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
     405),
    (b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"DELETE /metrics HTTP/1.0\r\n\r\n", 405),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET /metrics/ HTTP/1.1\r\n\r\n", 404),
    (b"GET /metricsx HTTP/1.1\r\n\r\n", 404),
    (b"GET /metrics?name[]=x HTTP/1.1\r\n\r\n", 200),
    (b"GET /metrics HTTP/1.0\n\n", 200),
    (b"GET /metrics\r\n\r\n", 400),
    (b"GET /metrics SMTP/1.0\r\n\r\n", 400),
    (b"hello\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nX: \0\r\n\r\n", 400),
])
def test_only_get_metrics_is_answered(authrelay, request_bytes, want):
    d = start(authrelay)
    code, head, _ = http(d.metrics_port, request_bytes)
    assert code == want, f"{request_bytes!r}: got {code}, want {want}"
    assert "Connection: close" in head, head
    if want == 405:
        assert "\r\nAllow: GET\r\n" in head, head


def test_over_long_request_is_cut(authrelay):
    d = start(authrelay)
    with socket.create_connection(("127.0.0.1", d.metrics_port),
                                  timeout=SCRAPE_TIMEOUT) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 8192)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 431 "), f"got {data[:80]!r}, want 431"
    # and the daemon still answers
    samples(scrape(d.metrics_port))


def test_silent_client_is_dropped_and_others_served(authrelay):
    """A connection that never completes its request is closed at the
    deadline; meanwhile other scrapes get their answer."""
    d = start(authrelay)
    with socket.create_connection(("127.0.0.1", d.metrics_port),
                                  timeout=30) as s:
        s.sendall(b"GET /metr")
        samples(scrape(d.metrics_port))
        assert s.recv(1) == b"", "want EOF after the deadline"


def test_low_port_is_a_config_error(config_for_check):
    from conftest import run_check
    path, text = config_for_check({"server": {"metrics_listen":
                                              "127.0.0.1:80"}})
    r = run_check(path)
    line = text.splitlines().index("metrics_listen = 127.0.0.1:80") + 1
    assert r.returncode == 1, r
    assert f"{path}:{line}: [server] metrics_listen" in r.stderr, r.stderr
