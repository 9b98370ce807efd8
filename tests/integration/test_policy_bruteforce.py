"""Password guessing and spraying ([auth] max_failures_per_ip,
failure_window, block_time, failure_delay; issue 5).

max_failures_per_ip failed logins from one client address within
failure_window block that address for block_time: the AUTH that reaches
the threshold (the last password checked) gets 421 4.7.0 and the
connection is closed; new connections from it get 421 4.7.0 at the
greeting (STARTTLS port) or are closed (implicit TLS port). Other addresses are not affected: the
real user logs in from 127.0.0.2 while 127.0.0.1 is blocked. Per
(address, login) the delay before each 535 doubles from failure_delay.
"""

import socket
import ssl
import time

import pytest

from conftest import USERS
from harness import ConnectionClosed, SMTPRaw, check
from policy_helpers import (OTHER_IP, THIRD_IP, audit_records, authed_from,
                            connect_from, marker, message, session_from,
                            tcp_from, transact, wait_record)

ATTACKER = "127.0.0.1"
SPRAY_USERS = ["alice", "bob", "carol", "dave", "admin", "root",
               "postmaster", "info"]


def throttle(**auth):
    return {"auth": {"failure_delay": "0", **auth}}


def guess(d, source_ip, attempts, users=SPRAY_USERS):
    """Wrong passwords from source_ip, several per connection, rotating
    the login names (spraying). Returns the replies as (attempt number,
    stage, first line), stage "auth" or "greeting"."""
    seen = []
    c = None
    n = 0
    while n < attempts:
        if c is None:
            try:
                c = connect_from(d, source_ip, greeting=False)
                g = c.read_reply()
            except ConnectionClosed:
                seen.append((n + 1, "greeting", "closed"))
                n += 1
                c = None
                continue
            if g.code != 220:
                seen.append((n + 1, "greeting", g.first_line))
                n += 1
                c.close()
                c = None
                continue
            c.ehlo()
            c.starttls(d.tls_context)
            c.ehlo()
        user = users[n % len(users)]
        n += 1
        try:
            r = c.auth_plain(user, f"guess-{n}-Winter2024!")
        except ConnectionClosed:
            seen.append((n, "auth", "closed"))
            c.close()
            c = None
            continue
        seen.append((n, "auth", r.first_line))
        if r.code != 535 or n % 5 == 0:
            # A new connection after a 421, and every few guesses (as
            # tools do, to stay under max_bad_commands).
            c.close()
            c = None
    if c is not None:
        c.close()
    return seen


def count_pam_checks(d):
    """Make every pam_authenticate of d's "authrelay-slow" PAM service
    append a line to a file; returns a function reading the count.

    That service runs pam_exec with the fixture's slow.sh before
    pam_matrix checks the password; pam_exec runs the script by path at
    each check, so rewriting it here counts the checks PAM really made
    (one line per check, appended atomically)."""
    counts = d.pam_files.dir / "pam-checks"
    counts.write_text("")
    script = d.pam_files.slow_script
    tmp = script.with_suffix(".new")
    tmp.write_text(f"#!/bin/sh\necho \"$PAM_USER\" >> {counts}\nexit 0\n")
    tmp.chmod(0o755)
    tmp.replace(script)
    return lambda: len(counts.read_text().splitlines())


def test_spraying_50_logins_blocks_the_address_not_the_user(authrelay,
                                                           smarthost):
    cfg = throttle(max_failures_per_ip=20)
    cfg["pam"] = {"service": "authrelay-slow"}
    d = authrelay(config=cfg)
    pam_checks = count_pam_checks(d)
    seen = guess(d, ATTACKER, 50)
    codes = [line[:3] for _n, _stage, line in seen]
    # 19 failures are answered 535; the 20th reaches the threshold: it
    # is the last password checked, answered 421 4.7.0.
    want_535 = [(n, s, l) for n, s, l in seen[:19] if not l.startswith(
        "535 5.7.8")]
    assert not want_535, f"first 19 guesses: want 535 5.7.8, got {want_535}"
    n20, stage20, line20 = seen[19]
    assert stage20 == "auth" and line20.startswith("421 4.7.0") and \
        "authentication failures" in line20.lower(), \
        f"guess 20: got {line20!r} at {stage20}, want 421 4.7.0 to the AUTH"
    rest = seen[20:]
    bad = [(n, s, l) for n, s, l in rest
           if not (s == "greeting" and l.startswith("421 4.7.0"))]
    assert not bad, f"guesses 21..50: want 421 4.7.0 at the greeting, " \
        f"got {bad}"
    assert codes.count("535") == 19
    # PAM checked exactly max_failures_per_ip passwords, never the 21st.
    assert pam_checks() == 20, \
        f"PAM checked {pam_checks()} passwords, want 20 (the limit)"

    # The real user, from another address, logs in and sends.
    c = authed_from(d, OTHER_IP, "alice")
    mark = marker()
    out = transact(c, "alice@example.com", data=message(mark=mark))
    assert out.code == 250, f"alice from {OTHER_IP}: got {out!r}"
    assert smarthost.wait_for(mark.encode()) is not None
    c.quit()
    # ... and from the blocked address even the right password is
    # refused at the greeting.
    c = connect_from(d, ATTACKER, greeting=False)
    r = c.read_reply()
    check(r, 421, "4.7.0", "greeting to the blocked address")
    c.assert_closed()

    rec = wait_record(d, "client-blocked", client=ATTACKER)
    assert rec.level == "warning", f"got {rec.line!r}"
    fails = [r for r in audit_records(d.log(), "auth-failure")
             if r["client"] == ATTACKER]
    assert len(fails) == 20, f"got {len(fails)} auth-failure records " \
        f"for {ATTACKER}, want 20"
    # alice's good login from OTHER_IP was the only other check.
    assert pam_checks() == 21, f"PAM checks: got {pam_checks()}, want 21"


def test_blocked_address_refused_on_the_implicit_tls_port(authrelay):
    d = authrelay(config=throttle(max_failures_per_ip=3))
    seen = guess(d, ATTACKER, 4)
    assert seen[3][2].startswith("421 4.7.0"), f"got {seen}"
    # 465: no plaintext to speak before TLS, so the connection is just
    # closed: the handshake cannot complete.
    s = tcp_from(d.tls_port, ATTACKER)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError,
                            socket.timeout)):
            ss = d.tls_context.wrap_socket(s, server_hostname="localhost")
            ss.settimeout(5)
            data = ss.recv(100)
            if data == b"":
                raise ConnectionResetError("closed")
            raise AssertionError(f"blocked address got {data!r} on 465")
    finally:
        s.close()
    # 465 from another address works.
    c = SMTPRaw(d.tls_port, sock=tcp_from(d.tls_port, OTHER_IP),
                tls_context=d.tls_context)
    c.ehlo()
    check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
    c.quit()


def test_session_open_before_the_block_is_refused_at_auth(authrelay):
    """A connection the attacker opened before being blocked cannot go
    on guessing: its next AUTH gets 421 4.7.0."""
    d = authrelay(config=throttle(max_failures_per_ip=3))
    early = session_from(d, ATTACKER)
    guess(d, ATTACKER, 4)
    r = early.auth_plain("alice", USERS["alice"])
    check(r, 421, "4.7.0", "AUTH on a connection of the blocked address")
    early.assert_closed()


def test_block_ends_after_block_time(authrelay):
    """block_time 5 s: blocked at once, free again once block_time has
    passed since the 421 arrived (the block began before the server
    sent it, so nothing here depends on how fast anything ran)."""
    d = authrelay(config=throttle(max_failures_per_ip=3, block_time="5s"))
    seen = guess(d, ATTACKER, 4)
    blocked_at = time.monotonic()
    assert seen[3][2].startswith("421 4.7.0"), f"got {seen}"
    c = connect_from(d, ATTACKER, greeting=False)
    check(c.read_reply(), 421, "4.7.0", "greeting while blocked")
    c.close()
    time.sleep(max(0.0, blocked_at + 5.5 - time.monotonic()))
    c = authed_from(d, ATTACKER, "alice")
    c.quit()


def test_failures_are_counted_per_address(authrelay):
    """Failures from two addresses do not add up: 3 + 3 under a limit
    of 4 block neither."""
    d = authrelay(config=throttle(max_failures_per_ip=4))
    for ip in (ATTACKER, OTHER_IP):
        seen = guess(d, ip, 3)
        assert all(l.startswith("535") for _n, _s, l in seen), \
            f"{ip}: got {seen}"
    for ip in (ATTACKER, OTHER_IP):
        c = authed_from(d, ip, "alice")
        c.quit()


def test_back_off_doubles_per_address_and_login(authrelay):
    """failure_delay 1 s: the delay before 535 doubles for each failure
    of the same login from the same address (1, 2, 4 s); alice's right
    password is not held back by the 8 s her next failure would wait;
    bob's first failure from that address, and alice's first from
    another one, wait 1 s again. A delay is never shorter than its timer
    (lower bounds at the configured delays); upper bounds only where a
    wrong back-off would wait 8 s, half-way to it, far from the 1 s
    expected. The exact arithmetic is test_limits_policy's."""
    d = authrelay(config={"auth": {"failure_delay": "1s"}})

    def timed_auth(c, user, password, code, enhanced):
        t0 = time.monotonic()
        check(c.auth_plain(user, password), code, enhanced)
        return time.monotonic() - t0

    c = session_from(d, ATTACKER)
    delays = [timed_auth(c, "alice", f"wrong-{i}", 535, "5.7.8")
              for i in range(3)]
    c.close()
    for got, want in zip(delays, [1, 2, 4]):
        assert got >= want, \
            f"delays {['%.2f' % x for x in delays]}, want at least 1, 2, 4"
    # the pair (ATTACKER, alice) would now wait 8 s before a 535
    c = session_from(d, ATTACKER)
    took = timed_auth(c, "alice", USERS["alice"], 235, "2.7.0")
    assert took < 4, f"right password after {took:.1f} s: held back"
    c.quit()
    # per login: bob from the attacker's address starts at 1 s (spraying
    # is what max_failures_per_ip is for)
    c = session_from(d, ATTACKER)
    took = timed_auth(c, "bob", "wrong", 535, "5.7.8")
    assert 1 <= took < 4, f"bob's first failure after {took:.1f} s, want 1"
    c.close()
    # per address: alice from elsewhere starts at 1 s
    c = session_from(d, OTHER_IP)
    took = timed_auth(c, "alice", "wrong-again", 535, "5.7.8")
    assert 1 <= took < 4, \
        f"first failure from {OTHER_IP} after {took:.1f} s, want 1"
    c.close()


def test_third_address_unaffected_while_two_are_blocked(authrelay):
    d = authrelay(config=throttle(max_failures_per_ip=2))
    for ip in (ATTACKER, OTHER_IP):
        seen = guess(d, ip, 3)
        assert seen[2][2].startswith("421 4.7.0"), f"{ip}: got {seen}"
    c = authed_from(d, THIRD_IP, "alice")
    c.quit()
