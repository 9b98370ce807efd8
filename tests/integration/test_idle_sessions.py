"""Many idle sessions (issue 14, target D): 10,000 authenticated TLS
sessions are held at once by one daemon, and a new client is served
while they are held, from the greeting to its message at the smarthost.

The sessions come from tests/bench/loadgen (built here with cc): one
process, epoll, STARTTLS and AUTH PLAIN for each, then nothing until it
is told to QUIT. The file-descriptor limit is raised for this process
and so for the daemon it starts (the shipped unit says LimitNOFILE);
both need one descriptor per session and some. Bounded: the sessions
are opened 200 at a time and the whole set up is given 180 s.
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import time

import pytest

from conftest import SRCDIR, USERS, binary_is_sanitized, AUTHRELAY_BIN
from harness import IN_CI, check, missing
from smarthost import SENDER, USER, message, submit

N = 10000
SETUP_TIMEOUT = 180.0


def raise_nofile(want):
    """Soft (and, as root, hard) RLIMIT_NOFILE up to want, or as far as
    this process may; returns (old limits, new soft limit)."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = old
    if hard != resource.RLIM_INFINITY and hard < want:
        try:    # needs CAP_SYS_RESOURCE
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return old, want
        except (ValueError, OSError):
            pass
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, new), hard))
    return old, max(soft, new)


@pytest.fixture
def nofile():
    old, soft = raise_nofile(N + 1000)
    yield soft
    resource.setrlimit(resource.RLIMIT_NOFILE, old)


@pytest.fixture
def loadgen(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        missing("a C compiler (Debian package gcc) for tests/bench/loadgen")
    out = tmp_path / "loadgen"
    r = subprocess.run([cc, "-O2", "-o", str(out),
                        str(SRCDIR / "tests" / "bench" / "loadgen.c"),
                        "-lssl", "-lcrypto"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"cannot build loadgen:\n{r.stderr}"
    return out


def test_ten_thousand_idle_sessions_and_a_new_one_served(authrelay, smarthost,
                                                         loadgen, nofile,
                                                         tmp_path):
    if binary_is_sanitized(AUTHRELAY_BIN):
        pytest.skip("10,000 TLS sessions under ASan: too slow to bound")
    if nofile < N + 500:
        msg = (f"RLIMIT_NOFILE can only be raised to {nofile}; "
               f"{N} sessions need {N + 500} (CAP_SYS_RESOURCE)")
        if IN_CI:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    d = authrelay(config={
        "server": {"max_connections": N + 100,
                   "max_connections_per_ip": N + 100,
                   "command_timeout": "10m"},
        # one PAM conversation, then the cache: the sessions' set-up
        # is TLS, not the workers
        "auth": {"cache_ttl": "10m"},
    })
    out = tmp_path / "loadgen.out"
    with open(out, "w") as fh:
        lg = subprocess.Popen(
            [str(loadgen), "-M", "idle", "-p", str(d.starttls_port),
             "-c", str(N), "-R", "200", "-T", "600", "-t", "60",
             "-G", "120", "-u", USER, "-w", USERS[USER]],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SETUP_TIMEOUT
        ready = None
        while ready is None and time.monotonic() < deadline:
            ready = re.search(r"^IDLE_READY .*$", out.read_text(), re.M)
            if ready is None:
                assert lg.poll() is None, \
                    f"loadgen ended early:\n{out.read_text()[-2000:]}"
                time.sleep(0.2)
        assert ready is not None, \
            f"{N} sessions not set up in {SETUP_TIMEOUT} s:\n" \
            f"{out.read_text()[-2000:]}"
        assert f"established={N} failed=0" in ready.group(0), \
            ready.group(0)
        # The daemon holds them: one descriptor each in the network
        # process.
        held = len(os.listdir(f"/proc/{d.net_pid}/fd"))
        assert held >= N, f"network process holds {held} fds, want >= {N}"

        # A new client meanwhile: greeted, TLS, AUTH, its message relayed.
        c = d.authed(USER)
        marker = b"served beside 10000 held sessions"
        r = submit(c, message(body=marker + b"\r\n"))
        check(r, 250, "2.0.0", what="message sent beside the held sessions")
        c.quit()
        assert smarthost.wait_for(marker) is not None, \
            "the new session's message did not reach the smarthost"
        held = len(os.listdir(f"/proc/{d.net_pid}/fd"))
        assert held >= N, f"after the new session: {held} fds, want >= {N}"
    finally:
        if lg.poll() is None:
            lg.send_signal(signal.SIGUSR1)  # QUIT on every session
        try:
            rc = lg.wait(timeout=120)
        except subprocess.TimeoutExpired:
            lg.kill()
            rc = lg.wait()
    result = re.search(r"^RESULT .*$", out.read_text(), re.M)
    assert rc == 0 and result is not None and "errors=0" in result.group(0), \
        f"loadgen rc {rc}:\n{out.read_text()[-2000:]}"
