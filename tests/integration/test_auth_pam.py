"""SMTP AUTH (RFC 4954) through the auth worker and PAM, with pam_wrapper
and pam_matrix standing in for the system's PAM stack (see PamFiles in
conftest.py for the service files)."""

import os
import re
import signal
import smtplib
import time

import pytest

import harness
from conftest import USERS
from harness import b64, check, plain_response


# -- the outcomes --------------------------------------------------------

def test_right_password_plain_is_235(authrelay):
    d = authrelay()
    with d.session() as c:
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
        c.expect("MAIL FROM:<alice@example.com>", 250, "2.1.0")


def test_right_password_login_is_235(authrelay):
    d = authrelay()
    with d.session() as c:
        check(c.auth_login("alice", USERS["alice"]), 235, "2.7.0")


@pytest.mark.parametrize("user", ["carol", "jörg"],
                         ids=["spaces", "utf8"])
def test_passwords_with_spaces_and_8bit_octets(authrelay, user):
    d = authrelay()
    with d.session() as c:
        check(c.auth_plain(user, USERS[user]), 235, "2.7.0")
    with d.session() as c:
        check(c.auth_login(user, USERS[user]), 235, "2.7.0")


def test_wrong_password_is_535(authrelay):
    d = authrelay()
    with d.session() as c:
        check(c.auth_plain("alice", "wrong"), 535, "5.7.8")
        # The session goes on: a second try with the right password works.
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")


def test_empty_password_is_535(authrelay):
    d = authrelay()
    with d.session() as c:
        check(c.auth_plain("alice", ""), 535, "5.7.8")


def failure_reply(d, user, password, mech="PLAIN"):
    with d.session() as c:
        if mech == "PLAIN":
            r = c.auth_plain(user, password)
        else:
            r = c.auth_login(user, password)
        check(r, 535, "5.7.8", f"AUTH {mech} {user}")
        return r.raw


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_every_failure_cause_gets_the_same_reply(authrelay, mech):
    """Wrong password, unknown user, locked account, expired account: the
    same 535 5.7.8, octet for octet, so a client cannot tell them apart."""
    d = authrelay()
    wrong = failure_reply(d, "alice", "not-the-password", mech)
    unknown = failure_reply(d, "nosuchuser", "whatever", mech)
    locked = failure_reply(d, "locked", USERS["locked"], mech)
    expired = failure_reply(d, "expired", USERS["expired"], mech)
    assert unknown == wrong, f"unknown user {unknown!r} != wrong pw {wrong!r}"
    assert locked == wrong, f"locked {locked!r} != wrong password {wrong!r}"
    assert expired == wrong, f"expired {expired!r} != wrong pw {wrong!r}"


def test_locked_account_is_535_even_with_right_password(authrelay):
    """The account step (pam_acct_mgmt) fails: refused although
    pam_authenticate succeeded."""
    d = authrelay()
    for user in ("locked", "expired"):
        with d.session() as c:
            check(c.auth_plain(user, USERS[user]), 535, "5.7.8", user)


def test_backend_outage_is_454(authrelay):
    """pam_matrix without its passdb answers PAM_AUTHINFO_UNAVAIL: a PAM
    outage, 454 4.7.0, never 535 or 235."""
    d = authrelay(config={"pam": {"service": "authrelay-outage"}})
    with d.session() as c:
        check(c.auth_plain("alice", USERS["alice"]), 454, "4.7.0")
        c.expect("NOOP", 250, "2.0.0")


# -- the worker pool -----------------------------------------------------

def start_slow_auth(d, c):
    """Send AUTH for the user whose PAM stack blocks in pam_exec; return
    (worker pid, sleeping script pid) once the worker is inside PAM."""
    pids_file = d.pam_files.slow_pids
    c.send("AUTH PLAIN " + plain_response("slow", USERS["slow"]) + "\r\n")
    assert harness.wait_for_file(pids_file, 10), \
        "the slow PAM stack never ran (no pam_exec script output in 10 s)"
    worker, sleeper = (int(x) for x in pids_file.read_text().split())
    os.unlink(pids_file)
    return worker, sleeper


def test_worker_killed_mid_request_is_454_and_next_auth_works(authrelay):
    d = authrelay(config={"pam": {"service": "authrelay-slow"},
                          "auth": {"workers": 1}})
    with d.session() as c:
        worker, sleeper = start_slow_auth(d, c)
        try:
            argv = harness.cmdline(worker)
            assert argv and "authrelay-auth" in argv[0], \
                f"pam_exec's parent {worker} is not an auth worker: {argv}"
            assert harness.parent_of(worker) == d.pid, \
                f"worker {worker} is not a child of the daemon {d.pid}"
            os.kill(worker, signal.SIGKILL)
            r = c.read_reply(timeout=10)
            check(r, 454, "4.7.0", "AUTH whose worker was killed")
            # From the worker's death, not from worker_timeout (30 s).
            assert re.search(r"auth worker \d+: exited; request failed "
                             r"temporarily", d.log()), d.log()
        finally:
            try:
                os.kill(sleeper, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # Same session, then a new one: a new worker answers.
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
    with d.session() as c:
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
    assert d.alive()


def test_worker_timeout_is_454_and_next_auth_works(authrelay):
    d = authrelay(config={"pam": {"service": "authrelay-slow"},
                          "auth": {"workers": 1, "worker_timeout": "2s"}})
    with d.session() as c:
        worker, sleeper = start_slow_auth(d, c)
        try:
            t0 = time.monotonic()
            r = c.read_reply(timeout=15)
            elapsed = time.monotonic() - t0
            check(r, 454, "4.7.0", "AUTH past worker_timeout")
            assert elapsed >= 1.5, f"454 after {elapsed:.1f} s, before " \
                                   f"worker_timeout (2 s)"
            assert re.search(r"auth worker \d+: timed out; request failed "
                             r"temporarily", d.log()), d.log()
        finally:
            try:
                os.kill(sleeper, signal.SIGKILL)
            except ProcessLookupError:
                pass
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")


def test_workers_are_recycled_after_max_requests(authrelay):
    d = authrelay(config={"auth": {"workers": 1, "worker_max_requests": 2}})
    seen = set()
    for i in range(5):
        with d.session() as c:
            check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0",
                  f"AUTH #{i + 1}")
            seen.update(d.worker_pids())
    # Five requests, two per worker: at least three workers over time.
    assert len(seen) >= 3, \
        f"worker_max_requests = 2 but only workers {sorted(seen)} were seen"


def test_concurrent_auths(authrelay):
    """More simultaneous AUTHs than workers: each gets its own answer."""
    d = authrelay(config={"auth": {"workers": 2}})
    sessions = [d.session() for _ in range(6)]
    try:
        for i, c in enumerate(sessions):
            pw = USERS["alice"] if i % 2 == 0 else "wrong"
            c.send("AUTH PLAIN " + plain_response("alice", pw) + "\r\n")
        for i, c in enumerate(sessions):
            r = c.read_reply()
            if i % 2 == 0:
                check(r, 235, "2.7.0", f"session {i}")
            else:
                check(r, 535, "5.7.8", f"session {i}")
    finally:
        for c in sessions:
            c.close()


# -- failure_delay -------------------------------------------------------

def test_failure_delay_holds_535_without_stalling_others(authrelay):
    # Long enough that the other session's two replies come first even
    # on a busy machine.
    d = authrelay(config={"auth": {"failure_delay": "5s"}})
    bad = d.session()
    other = d.session()
    try:
        t0 = time.monotonic()
        bad.send("AUTH PLAIN " + plain_response("alice", "wrong") + "\r\n")
        # Order, not time: another session's NOOP and good AUTH are
        # answered while the 535 is still held back.
        other.expect("NOOP", 250, "2.0.0")
        check(other.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
        held_back = not bad.waiting()
        r = bad.read_reply(timeout=15)
        held = time.monotonic() - t0
        check(r, 535, "5.7.8")
        assert held >= 4.9, f"535 after {held:.2f} s, failure_delay is 5 s"
        assert held_back, "the 535 came before the other session's replies"
    finally:
        bad.close()
        other.close()


@pytest.mark.parametrize("user,password,authzid", [
    ("nosuchuser", "x", ""),
    ("locked", USERS["locked"], ""),
    ("alice", USERS["alice"], "bob"),
], ids=["unknown-user", "locked", "authzid-mismatch"])
def test_failure_delay_applies_to_every_cause(authrelay, user, password,
                                              authzid):
    d = authrelay(config={"auth": {"failure_delay": "1s"}})
    with d.session() as c:
        t0 = time.monotonic()
        r = c.auth_plain(user, password, authzid)
        held = time.monotonic() - t0
        check(r, 535, "5.7.8")
        assert held >= 0.9, f"535 after {held:.2f} s, failure_delay is 1 s"


# -- how real clients do it ----------------------------------------------

def test_outlook_style_session(authrelay):
    """EHLO, STARTTLS, EHLO, AUTH LOGIN with the two prompts, MAIL, RCPT."""
    d = authrelay()
    with d.connect() as c:
        c.ehlo("DESKTOP-7F3K2LQ")
        c.starttls(d.tls_context)
        c.ehlo("DESKTOP-7F3K2LQ")
        r = c.cmd("AUTH LOGIN")
        check(r, 334)
        assert r.lines == ["VXNlcm5hbWU6"], f"want 334 VXNlcm5hbWU6: {r!r}"
        r = c.cmd(b64("alice"))
        check(r, 334)
        assert r.lines == ["UGFzc3dvcmQ6"], f"want 334 UGFzc3dvcmQ6: {r!r}"
        check(c.cmd(b64(USERS["alice"])), 235, "2.7.0")
        c.expect("MAIL FROM:<alice@example.com> SIZE=2048", 250, "2.1.0")
        c.expect("RCPT TO:<bob@example.net>", 250, "2.1.5")
        c.quit()


def test_apple_mail_style_session(authrelay, pki):
    """smtplib (like Apple Mail): STARTTLS, then AUTH PLAIN with the
    initial response."""
    d = authrelay()
    s = smtplib.SMTP("127.0.0.1", d.starttls_port, local_hostname="mac",
                     timeout=10)
    try:
        s.ehlo()
        assert not s.has_extn("auth"), "AUTH offered before TLS"
        code, _ = s.starttls(context=pki.client_context())
        assert code == 220
        s.ehlo()
        assert s.has_extn("auth")
        code, msg = s.docmd("AUTH", "PLAIN " + plain_response(
            "alice", USERS["alice"]))
        assert code == 235 and msg.startswith(b"2.7.0"), (code, msg)
        code, msg = s.docmd("MAIL", "FROM:<alice@example.com>")
        assert code == 250, (code, msg)
    finally:
        s.close()


def test_smtplib_login_on_both_ports(authrelay, pki):
    d = authrelay()
    with smtplib.SMTP("127.0.0.1", d.starttls_port, timeout=10) as s:
        s.starttls(context=pki.client_context())
        code, msg = s.login("alice", USERS["alice"])
        assert code == 235, (code, msg)
    with smtplib.SMTP_SSL("127.0.0.1", d.tls_port, timeout=10,
                          context=pki.client_context()) as s:
        code, msg = s.login("alice", USERS["alice"])
        assert code == 235, (code, msg)
    with smtplib.SMTP_SSL("127.0.0.1", d.tls_port, timeout=10,
                          context=pki.client_context()) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice", "wrong")
        assert e.value.smtp_code == 535


def test_auth_plain_without_initial_response(authrelay):
    """Thunderbird style: AUTH PLAIN, an empty 334 challenge, then the
    response."""
    d = authrelay()
    with d.session() as c:
        r = c.cmd("AUTH PLAIN")
        check(r, 334)
        assert r.lines in ([""], []), f"PLAIN challenge must be empty: {r!r}"
        check(c.cmd(plain_response("alice", USERS["alice"])), 235, "2.7.0")


def test_auth_login_with_initial_response(authrelay):
    d = authrelay()
    with d.session() as c:
        r = c.cmd("AUTH LOGIN " + b64("alice"))
        check(r, 334)
        assert r.lines == ["UGFzc3dvcmQ6"], r
        check(c.cmd(b64(USERS["alice"])), 235, "2.7.0")


def test_auth_plain_with_authzid_equal_to_authcid(authrelay):
    d = authrelay()
    with d.session() as c:
        check(c.auth_plain("alice", USERS["alice"], authzid="alice"), 235,
              "2.7.0")


def test_authenticated_transaction(authrelay, smarthost):
    """MAIL, RCPT, DATA after AUTH: the message reaches the smarthost,
    tagged with the authenticated user, and the client gets the
    smarthost's 250."""
    d = authrelay()
    marker = f"t-{os.getpid()}-{time.monotonic_ns()}"
    with d.authed() as c:
        c.expect("MAIL FROM:<alice@example.com> BODY=8BITMIME", 250, "2.1.0")
        c.expect("RCPT TO:<bob@example.net>", 250, "2.1.5")
        check(c.cmd("DATA"), 354, None, "DATA")
        c.send(f"From: <alice@example.com>\r\nTo: <bob@example.net>\r\n"
               f"Subject: {marker}\r\n\r\nhello\r\n.\r\n")
        check(c.read_reply(), 250, "2.0.0", "end of DATA")
        c.expect("NOOP", 250, "2.0.0")
        c.quit()
    env = smarthost.wait_for(marker.encode())
    assert env is not None, "the message never reached the smarthost"
    assert env.mail_from == "alice@example.com", env.mail_from
    assert env.rcpt_tos == ["bob@example.net"], env.rcpt_tos
    assert b"\r\nX-Authenticated-User: alice\r\n" in \
        b"\r\n" + env.original_content, env.original_content[:500]


def test_passwords_never_reach_the_log(authrelay):
    d = authrelay()
    secret = "Never-Log-Me-8472"
    with d.session() as c:
        check(c.auth_plain("alice", secret), 535, "5.7.8")
        check(c.auth_login("alice", secret), 535, "5.7.8")
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
    log = d.log()
    for s in (secret, USERS["alice"], b64(secret),
              plain_response("alice", USERS["alice"])):
        assert s not in log, f"{s!r} appears in the daemon's stderr"
