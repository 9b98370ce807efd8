"""Timeouts and limits: command_timeout, handshake_timeout."""

import socket
import time

from conftest import USERS
from harness import check


def test_idle_session_gets_421_at_command_timeout(authrelay):
    d = authrelay(config={"server": {"command_timeout": "1s"}})
    with d.connect() as c:
        t0 = time.monotonic()
        check(c.read_reply(timeout=10), 421, "4.4.2", "idle before TLS")
        waited = time.monotonic() - t0
        # Not before the timeout; read_reply's 10 s bound the rest.
        assert waited >= 0.8, f"421 after {waited:.1f} s, timeout 1 s"
        c.assert_closed()


def test_idle_tls_session_gets_421_at_command_timeout(authrelay):
    d = authrelay(config={"server": {"command_timeout": "1s"}})
    with d.session() as c:
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
        check(c.read_reply(timeout=10), 421, "4.4.2", "idle after AUTH")
        c.assert_closed()


def test_timeout_restarts_with_each_command(authrelay):
    d = authrelay(config={"server": {"command_timeout": "3s"}})
    with d.connect() as c:
        for _ in range(4):          # 4 x 1 s > 3 s in total
            time.sleep(1)
            c.expect("NOOP", 250, "2.0.0")


def test_stalled_tls_handshake_is_dropped(authrelay):
    """A client that connects to the implicit TLS port and says nothing is
    dropped after handshake_timeout."""
    d = authrelay(config={"tls": {"handshake_timeout": "1s"}})
    s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
    try:
        t0 = time.monotonic()
        s.settimeout(10)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        waited = time.monotonic() - t0
        assert data == b"", f"got {data!r} instead of a close"
        # The socket's 10 s timeout bounds the wait (10 x the timeout).
    finally:
        s.close()


def test_stalled_starttls_handshake_is_dropped(authrelay):
    d = authrelay(config={"tls": {"handshake_timeout": "1s"}})
    with d.connect() as c:
        c.ehlo()
        check(c.cmd("STARTTLS"), 220)
        c.assert_closed(timeout=6)
    with d.session() as c:
        c.expect("NOOP", 250, "2.0.0")
