"""Smarthost connection reuse ([relay] connection_cache): after a client
session the relay connection goes back to its thread's cache (RSET
answered 250) instead of QUIT, and the next session on that thread takes
it: no new connection, no TLS handshake, no AUTH. A cached connection
that fails is replaced without the client noticing; a connection that
carries a user's identity (xclient = yes) is never shared; a reload, the
idle time and shutdown close cached connections with QUIT.

The daemon runs one serving thread here, so every session is on the
thread whose cache is looked at. Counts come from the scripted smarthost
(smarthost.py): its connections, greetings, EHLOs and AUTHs."""

import signal
import time

import pytest

from harness import check
from smarthost import (CLOSE, SENDER, USER, message, relay_config,
                       submit)

pytest_plugins = ["smarthost"]

RELAY_USER = "relay@example.com"
RELAY_PASSWORD = "relay-Secret-1"
KEPT = "connection kept for the next session"


def config(sh, **relay):
    """One serving thread; the cache at its default size unless
    given (the suite's base config turns it off)."""
    relay.setdefault("connection_cache", 4)
    return relay_config(sh, server={"threads": 1}, **relay)


def wait_for(pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.05)


def wait_kept(d, n):
    """The daemon has put a connection in its cache n times so far."""
    wait_for(lambda: d.log().count(KEPT) >= n,
             f"{n} connection(s) kept (log: {d.log()[-600:]!r})")


def one_session(d, n):
    """A client session: one message, QUIT; the smarthost's 250."""
    c = d.authed(USER)
    check(submit(c, message(b"message %d\r\n" % n)), 250, "2.0.0",
          what=f"end of data, session {n}")
    c.quit()


def verbs(sess):
    return [v.decode() for v in sess.verbs()]


def test_sessions_share_one_authenticated_connection(smarthosts, authrelay,
                                                     tmp_path, pki):
    secret = tmp_path / "relay.secret"
    secret.write_text(RELAY_PASSWORD + "\n")
    secret.chmod(0o600)
    sh = smarthosts(starttls="valid", auth=(RELAY_USER, RELAY_PASSWORD))
    d = authrelay(config=config(sh, tls="starttls", tls_verify=True,
                                ca_file=str(pki.ca_cert),
                                auth_user=RELAY_USER,
                                auth_password_file=str(secret)))
    n = 4
    for i in range(n):
        one_session(d, i)
        wait_kept(d, i + 1)
    assert sh.connections == 1, \
        f"got {sh.connections} smarthost connections, want 1"
    sess = sh.sessions[0]
    got = verbs(sess)
    assert got.count("STARTTLS") == 1 and len(sess.auth) == 1, \
        f"got {got}, want one STARTTLS and one AUTH for {n} sessions"
    assert got.count("RSET") == n and "QUIT" not in got, \
        f"got {got}, want an RSET after each of {n} sessions, no QUIT"
    assert len(sh.messages) == n and all(t.tls for t in sh.messages)
    # Each message says who submitted it, whoever opened the connection.
    assert all(f"AUTH=<{SENDER}>".encode() in t.mail
               or f"AUTH={SENDER}".encode() in t.mail
               for t in sh.messages), [t.mail for t in sh.messages]


def test_smarthost_closing_the_idle_connection(smarthosts, authrelay):
    """Closed while idle: the cache notices and drops it; the next
    message goes on a new connection."""
    sh = smarthosts(after={"RSET": CLOSE})
    d = authrelay(config=config(sh))
    one_session(d, 0)
    wait_for(lambda: sh.sessions and sh.sessions[0].closed.is_set(),
             "the smarthost closed its first connection")
    one_session(d, 1)
    assert sh.connections == 2
    assert len(sh.messages) == 2


@pytest.mark.parametrize("fault", [CLOSE, b"421 4.4.2 Idle too long\r\n"],
                         ids=["closed", "421"])
def test_reused_connection_failing_at_mail_is_replaced(smarthosts,
                                                       authrelay, fault):
    """The smarthost drops the cached connection just as it is used (the
    close was still on its way): the MAIL goes again on a new connection
    and the client sees only the 250s."""
    def second_mail(sess, line):
        return fault if len(sess.transactions) == 2 else None

    sh = smarthosts(faults={"MAIL": second_mail})
    d = authrelay(config=config(sh))
    one_session(d, 0)
    wait_kept(d, 1)
    one_session(d, 1)
    assert sh.connections == 2, \
        f"got {sh.connections} connections, want 2 (the retry)"
    assert [len(s.transactions) for s in sh.sessions] == [2, 1]
    assert len(sh.messages) == 2


def test_rset_refused_drops_the_connection(smarthosts, authrelay):
    sh = smarthosts(faults={"RSET": b"554 5.5.1 No RSET today\r\n"})
    d = authrelay(config=config(sh))
    one_session(d, 0)
    wait_for(lambda: sh.sessions and sh.sessions[0].closed.is_set(),
             "the connection whose RSET was refused closed")
    assert verbs(sh.sessions[0])[-2:] == ["RSET", "QUIT"], \
        f"got {verbs(sh.sessions[0])}, want RSET then QUIT"
    one_session(d, 1)
    assert sh.connections == 2
    assert KEPT not in d.log()


def test_xclient_keeps_one_connection_per_session(smarthosts, authrelay):
    sh = smarthosts(xclient=True)
    d = authrelay(config=config(sh, xclient="yes"))
    for i in range(3):
        one_session(d, i)
    wait_for(lambda: len(sh.sessions) == 3 and
             all(s.closed.is_set() for s in sh.sessions),
             "three smarthost connections, each closed")
    assert sh.connections == 3
    for s in sh.sessions:
        assert len(s.xclient) == 1 and verbs(s)[-1] == "QUIT", verbs(s)
        assert "RSET" not in verbs(s), verbs(s)
    assert KEPT not in d.log()


def test_reload_closes_cached_connections(smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=config(sh))
    one_session(d, 0)
    wait_kept(d, 1)
    d.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in d.log(), "the reload")
    wait_for(lambda: sh.sessions[0].closed.is_set(),
             "the cached connection closed at the reload")
    assert verbs(sh.sessions[0])[-1] == "QUIT"
    one_session(d, 1)
    assert sh.connections == 2, \
        "a connection made with the old settings was reused"


def test_cache_disabled_is_one_connection_per_session(smarthosts,
                                                      authrelay):
    sh = smarthosts()
    d = authrelay(config=config(sh, connection_cache=0))
    for i in range(2):
        one_session(d, i)
    wait_for(lambda: len(sh.sessions) == 2 and
             all(s.closed.is_set() for s in sh.sessions),
             "two smarthost connections, each closed")
    for s in sh.sessions:
        assert "RSET" not in verbs(s) and verbs(s)[-1] == "QUIT", verbs(s)


def test_idle_connection_closed_after_its_idle_time(smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=config(sh, connection_cache_idle="1s"))
    one_session(d, 0)
    wait_kept(d, 1)
    wait_for(lambda: sh.sessions[0].closed.is_set(),
             "the idle connection closed after connection_cache_idle")
    assert verbs(sh.sessions[0])[-2:] == ["RSET", "QUIT"], \
        verbs(sh.sessions[0])
    one_session(d, 1)
    assert sh.connections == 2


def test_cap_keeps_at_most_connection_cache(smarthosts, authrelay):
    """Two sessions at once, a cache of one: one connection kept, the
    other says QUIT."""
    sh = smarthosts()
    d = authrelay(config=config(sh, connection_cache=1))
    clients = [d.authed(USER) for _ in range(2)]
    for i, c in enumerate(clients):
        check(submit(c, message(b"message %d\r\n" % i)), 250, "2.0.0")
    for c in clients:
        c.quit()
    wait_kept(d, 2)
    wait_for(lambda: sum(s.closed.is_set() for s in sh.sessions) == 1,
             "one of the two connections closed")
    closed = [s for s in sh.sessions if s.closed.is_set()]
    assert verbs(closed[0])[-2:] == ["RSET", "QUIT"], verbs(closed[0])
    one_session(d, 2)
    assert sh.connections == 2


def test_shutdown_says_quit_on_cached_connections(smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=config(sh))
    one_session(d, 0)
    wait_kept(d, 1)
    d.stop()
    wait_for(lambda: sh.sessions[0].closed.is_set(),
             "the cached connection closed at shutdown")
    assert verbs(sh.sessions[0])[-1] == "QUIT", verbs(sh.sessions[0])
