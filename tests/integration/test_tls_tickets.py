"""TLS session tickets for clients ([tls] ticket_lifetime): a client
that comes back resumes its TLS 1.2 or TLS 1.3 session, whichever
serving thread takes the new connection (the ticket keys are shared by
all threads); after the keys rotate (a reload, or the lifetime passing)
the old ticket is refused and a full handshake follows. A client that
reconnects all day resumes every time: each resumed session brings a new
ticket, and the server ends TLS with close_notify (after a cut, a strict
client drops its ticket). With ticket_lifetime = 0 nothing is resumed."""

import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from harness import REPLY_TIMEOUT, SMTPRaw, check, require
from policy_helpers import serving_thread

VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2,
            "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def client_context(pki, version):
    ctx = pki.client_context()
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


def connect(d, ctx, session=None):
    """An implicit-TLS connection (offering session when given), the
    greeting read: a TLS 1.3 ticket comes with it."""
    raw = socket.create_connection(("127.0.0.1", d.tls_port),
                                   timeout=REPLY_TIMEOUT)
    tls = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    c = SMTPRaw(d.tls_port, sock=tls, greeting=False)
    c.tls = True
    check(c.read_reply(), 220, what="greeting")
    return c


def wait_log(d, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while text not in d.log():
        assert time.monotonic() < deadline, f"no {text!r} in the log"
        time.sleep(0.05)


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_resumed_on_another_thread(authrelay, pki, version):
    d = authrelay(config={"server": {"threads": 2}})
    ctx = client_context(pki, version)
    first = connect(d, ctx)
    assert first.sock.version() == version
    assert not first.sock.session_reused
    session = first.sock.session
    assert session is not None and session.has_ticket, \
        f"got no ticket with {version}"
    home = serving_thread(d, first)
    assert home is not None, "cannot tell which thread serves the session"
    # Keep the first open and reconnect until a connection lands on the
    # other thread; every one of them must resume.
    others, kept = set(), [first]
    for n in range(40):
        c = connect(d, ctx, session=session)
        kept.append(c)
        assert c.sock.session_reused, \
            f"connection {n} ({version}): got a full handshake, want " \
            f"resumption"
        tid = serving_thread(d, c)
        if tid is not None and tid != home:
            others.add(tid)
            break
        if len(kept) > 8:
            kept.pop(1).close()
    for c in kept:
        c.close()
    assert others, f"40 resumed connections, none on a thread other " \
        f"than {home}"


def end_after_quit(c):
    """QUIT, the 221, then the end of the connection."""
    check(c.cmd("QUIT"), 221, "2.0.0", "QUIT")
    c.assert_closed()
    c.close()


@pytest.mark.parametrize("listener", ["tls", "starttls"])
@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_tls_ends_with_close_notify(authrelay, version, listener):
    """After QUIT the server ends TLS with close_notify before it closes
    the socket (RFC 8446 6.1). OpenSSL 3 clients take a bare end of the
    stream as an error and drop the session's ticket (Python's ssl hides
    it, so openssl s_client is the witness)."""
    openssl = require("openssl")
    d = authrelay()
    port = d.starttls_port if listener == "starttls" else d.tls_port
    cmd = [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-msg",
           "-nocommands", "-ign_eof",
           "-tls1_2" if version == "TLSv1.2" else "-tls1_3"]
    if listener == "starttls":
        cmd += ["-starttls", "smtp"]
    r = subprocess.run(cmd, input="EHLO client.example\r\nQUIT\r\n",
                       capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    assert "221 2.0.0" in out, out
    got = re.findall(r"^<<< .*Alert.*$", out, re.M)
    assert any(a.endswith("warning close_notify") for a in got), \
        f"no close_notify from the server ({version}, {listener}):\n{out}"
    assert not any("fatal" in a for a in got), got
    assert not re.search(r"^>>> .*Alert.*fatal", out, re.M), \
        f"the client saw the connection cut:\n{out}"


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_client_that_reconnects_all_day_keeps_resuming(authrelay, pki,
                                                        version):
    """Each connection offers the newest ticket it got, ends with QUIT
    and reads to the end, like a mail client that reconnects: every
    reconnection resumes, and each resumed session brings a new ticket
    (a TLS 1.3 client uses a ticket once, RFC 8446 C.4)."""
    d = authrelay()
    ctx = client_context(pki, version)
    session = None
    for n in range(6):
        raw = socket.create_connection(("127.0.0.1", d.tls_port),
                                       timeout=REPLY_TIMEOUT)
        tls = ctx.wrap_socket(raw, server_hostname="localhost",
                              session=session)
        c = SMTPRaw(d.tls_port, sock=tls, greeting=False)
        c.tls = True
        check(c.read_reply(), 220, what="greeting")
        if n > 0:
            assert c.sock.session_reused, \
                f"reconnection {n} ({version}): full handshake"
        check(c.cmd("EHLO client.example"), 250, what="EHLO")
        fresh = c.sock.session
        assert fresh is not None and fresh.has_ticket, \
            f"connection {n} ({version}): no ticket"
        if n > 0 and version == "TLSv1.3":
            assert fresh.id != session.id, \
                f"reconnection {n}: the resumed session brought no new " \
                f"ticket"
        end_after_quit(c)
        session = fresh


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_reload_rotates_the_keys(authrelay, pki, version):
    d = authrelay()
    ctx = client_context(pki, version)
    with connect(d, ctx) as c:
        session = c.sock.session
    with connect(d, ctx, session=session) as c:
        assert c.sock.session_reused, "no resumption before the reload"
    d.signal(signal.SIGHUP)
    wait_log(d, "configuration reloaded")
    with connect(d, ctx, session=session) as c:
        assert not c.sock.session_reused, \
            "a ticket from before the reload was accepted"
        fresh = c.sock.session
    with connect(d, ctx, session=fresh) as c:
        assert c.sock.session_reused, "the new keys' tickets do not resume"


def test_ticket_refused_after_its_lifetime(authrelay, pki):
    d = authrelay(config={"tls": {"ticket_lifetime": "1s"}})
    ctx = client_context(pki, "TLSv1.3")
    with connect(d, ctx) as c:
        session = c.sock.session
        assert session.has_ticket
    # One lifetime for the key to encrypt, one more to open: past both,
    # the key is gone.
    time.sleep(2.5)
    with connect(d, ctx, session=session) as c:
        assert not c.sock.session_reused, \
            "a ticket past two lifetimes was accepted"


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_no_tickets_with_lifetime_zero(authrelay, pki, version):
    d = authrelay(config={"tls": {"ticket_lifetime": "0"}})
    ctx = client_context(pki, version)
    with connect(d, ctx) as c:
        session = c.sock.session
        assert session is None or not session.has_ticket, \
            "got a ticket with ticket_lifetime = 0"
    with connect(d, ctx, session=session) as c:
        assert not c.sock.session_reused
