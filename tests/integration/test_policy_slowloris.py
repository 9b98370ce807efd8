"""Slow clients ([server] command_timeout, [tls] handshake_timeout;
issue 5): the deadline for a command runs from the reply to the previous
one and is not moved by each octet, so a client that trickles one byte
every 2 s is cut off with 421 4.4.2 when it passes, while other clients
are served as usual meanwhile.
"""

import socket
import ssl
import threading
import time

from conftest import USERS
from harness import check, plain_response
from policy_helpers import (OTHER_IP, authed_from, connect_from, marker,
                            message, transact, wait_record)

TIMEOUT = 4         # command_timeout, seconds
BYTE_EVERY = 2.0    # the slow client's pace


class Trickler(threading.Thread):
    """Sends data one byte every BYTE_EVERY seconds on an SMTPRaw client
    (greeting already read) until the server answers or closes, or the
    data runs out; records when and what came back."""

    def __init__(self, client, data, start_at):
        super().__init__(daemon=True)
        self.c = client
        self.data = data
        self.start_at = start_at
        self.reply = None
        self.sent = 0
        self.after = None       # seconds from start_at to the reply
        self.closed_after = None
        self.error = None

    def run(self):
        try:
            self.c.sock.settimeout(BYTE_EVERY)
            for i in range(len(self.data)):
                try:
                    self.c.sock.sendall(self.data[i:i + 1])
                    self.sent += 1
                except OSError:
                    break
                try:
                    got = self.c.sock.recv(4096)
                except socket.timeout:
                    continue            # nothing yet: next byte
                except OSError:
                    got = b""
                self.after = time.monotonic() - self.start_at
                self.reply = got
                if got:
                    try:
                        self.c.sock.settimeout(5)
                        rest = self.c.sock.recv(4096)
                    except OSError:
                        rest = b""
                    if rest == b"":
                        self.closed_after = \
                            time.monotonic() - self.start_at
                break
        except Exception as e:  # reported by the test
            self.error = e


def assert_cut(t, what):
    assert t.error is None, f"{what}: {t.error!r}"
    assert t.reply is not None, \
        f"{what}: no reply after {t.sent} bytes at one per {BYTE_EVERY} s"
    assert t.reply.startswith(b"421 4.4.2"), \
        f"{what}: got {t.reply!r}, want 421 4.4.2"
    # start_at is before the connection: the deadline cannot pass
    # sooner. A deadline moved by each byte would never pass before the
    # whole command is in (a byte every 2 s, over 30 bytes).
    assert t.after >= TIMEOUT, \
        f"{what}: cut after {t.after:.1f} s, command_timeout {TIMEOUT} s"
    assert t.closed_after is not None, f"{what}: not closed after the 421"
    assert t.sent < len(t.data), \
        f"{what}: the whole command got through (the deadline moved)"


def normal_client_works(d, smarthost, source_ip):
    """A whole submission."""
    c = authed_from(d, source_ip, "bob")
    mark = marker()
    out = transact(c, "bob@example.com", data=message(mark=mark))
    assert out.code == 250, f"normal client: got {out!r}"
    c.quit()
    assert smarthost.wait_for(mark.encode()) is not None


def test_slowloris_cut_at_command_deadline_others_served(authrelay,
                                                        smarthost):
    d = authrelay(config={"server": {"command_timeout": f"{TIMEOUT}s"}})
    slow = []
    for i in range(5):
        start_at = time.monotonic()
        c = connect_from(d, "127.0.0.1")
        slow.append(Trickler(c, b"EHLO slowloris-%d.example.org\r\n" % i,
                             start_at))
    for t in slow:
        t.start()
    # While they trickle, others come and go as usual, from the same
    # address and from another one: served, in order, before the slow
    # ones are cut (a loop stalled by them would serve nobody until
    # then).
    served = 0
    served_before_cut = 0
    deadline = time.monotonic() + TIMEOUT + BYTE_EVERY
    while time.monotonic() < deadline:
        normal_client_works(d, smarthost,
                            "127.0.0.1" if served % 2 else OTHER_IP)
        served += 1
        if all(t.reply is None for t in slow):
            served_before_cut += 1
        time.sleep(0.3)
    for t in slow:
        t.join(timeout=TIMEOUT + 3 * BYTE_EVERY + 10)
        assert not t.is_alive(), "slow client thread still running"
    for i, t in enumerate(slow):
        assert_cut(t, f"slow client {i}")
        t.c.close()
    assert served_before_cut >= 1, \
        f"no normal client served before the slow ones were cut " \
        f"({served} after)"
    rec = wait_record(d, "timeout", state="command")
    assert rec["client"] == "127.0.0.1"


def test_slowloris_after_auth(authrelay, smarthost):
    """An authenticated client trickling MAIL FROM is cut the same way."""
    d = authrelay(config={"server": {"command_timeout": f"{TIMEOUT}s"}})
    start_at = time.monotonic()     # before the 235 that starts the deadline
    c = authed_from(d, "127.0.0.1")
    t = Trickler(c, b"MAIL FROM:<alice@example.com>\r\n", start_at)
    t.start()
    t.join(timeout=TIMEOUT + 3 * BYTE_EVERY + 10)
    assert not t.is_alive()
    assert_cut(t, "authenticated slow client")
    c.close()


def test_slowloris_in_auth_continuation(authrelay):
    """After 334, the client's response is a command line too."""
    d = authrelay(config={"server": {"command_timeout": f"{TIMEOUT}s"}})
    c = connect_from(d, "127.0.0.1")
    c.ehlo()
    c.starttls(d.tls_context)
    c.ehlo()
    start_at = time.monotonic()     # before the 334 that starts the deadline
    check(c.cmd("AUTH PLAIN"), 334, None, "AUTH PLAIN")
    t = Trickler(c, plain_response("alice", USERS["alice"]).encode() +
                 b"\r\n", start_at)
    t.start()
    t.join(timeout=TIMEOUT + 3 * BYTE_EVERY + 10)
    assert not t.is_alive()
    assert_cut(t, "slow AUTH response")
    c.close()


def test_trickled_tls_handshake_is_cut(authrelay):
    """A ClientHello sent one byte every 2 s on the implicit TLS port is
    dropped at handshake_timeout, not kept alive by the bytes."""
    d = authrelay(config={"tls": {"handshake_timeout": f"{TIMEOUT}s"}})
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = d.tls_context.wrap_bio(incoming, outgoing,
                                 server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert len(hello) > 100, "no ClientHello produced"
    t0 = time.monotonic()       # before the connection: its deadline
    s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
    s.settimeout(BYTE_EVERY)
    closed_after = None
    try:
        for i in range(len(hello)):
            try:
                s.sendall(hello[i:i + 1])
            except OSError:
                closed_after = time.monotonic() - t0
                break
            try:
                got = s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                got = b""
            assert got == b"", f"got {got!r} to a partial ClientHello"
            closed_after = time.monotonic() - t0
            break
    finally:
        s.close()
    # A deadline kept alive by each byte would take the whole hello
    # (over 100 bytes, one every 2 s); never closed before it passed.
    assert closed_after is not None, "still open after the handshake timeout"
    assert closed_after >= TIMEOUT, \
        f"closed after {closed_after:.1f} s, handshake_timeout {TIMEOUT} s"


def test_each_command_gets_a_fresh_deadline(authrelay):
    """The deadline is per command: a client that sends whole commands
    slowly (each within the deadline) is not cut."""
    d = authrelay(config={"server": {"command_timeout": f"{TIMEOUT}s"}})
    c = connect_from(d, "127.0.0.1")
    # 3 x TIMEOUT/2 is longer than one deadline; each pause is half of
    # it, far from it.
    for _ in range(3):
        time.sleep(TIMEOUT / 2)
        c.expect("NOOP", 250, "2.0.0")
    c.quit()


def test_slow_client_alone_on_a_connection_cannot_stall_the_thread(
        authrelay, smarthost):
    """threads = 1: a half-sent command does not block the only event
    loop; another client is served at once."""
    d = authrelay(config={"server": {"command_timeout": "60s",
                                     "threads": 1}})
    c = connect_from(d, "127.0.0.1")
    c.send(b"EHLO half-a-comm")
    try:
        normal_client_works(d, smarthost, OTHER_IP)
        # in that order: the half command is still unanswered, its
        # deadline (60 s) far away
        assert not c.waiting(), "the half-sent command got a reply"
    finally:
        c.close()
