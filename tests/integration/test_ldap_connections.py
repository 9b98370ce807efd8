"""The LDAP backend's connections: ldaps:// and StartTLS with certificate
verification, failover between two slapd instances in uri order, a killed,
stopped, hanging (SIGSTOP) or restarted directory. A directory that cannot
answer is a 454, never a 235 and never a 535; nothing hangs the proxy."""

import re
import time

import pytest

from harness import check, plain_response
from slapd import (USERS, ldap_config, make_cert_for, make_other_ca,
                   slapd_factory, user_dn)  # noqa: F401

TIMEOUT = 2         # [ldap] timeout in these tests, seconds
# Time bounds stay far from every configured timeout (ldap TIMEOUT or
# LONG_TIMEOUT, worker_timeout 30 s): on a busy machine a bound close to
# a timeout fails for the wrong reason.
LONG_TIMEOUT = 8
FAR = 15            # well past TIMEOUT, well before worker_timeout


def pw(uid):
    return USERS[uid]["password"]


def one_worker(conf):
    """One serving thread with one auth worker, so that every AUTH goes
    to the same worker and its kept connections."""
    conf["auth"]["workers"] = 1
    conf["server"] = {"threads": 1}
    return conf


def attempt(d, user="alice", password=None):
    with d.session() as c:
        t0 = time.monotonic()
        r = c.auth_plain(user, pw(user) if password is None else password)
        return r, time.monotonic() - t0


def tls_binds(server, dn):
    """The security strength factor of each completed bind as dn."""
    return [int(m.group(1)) for m in re.finditer(
        r' BIND dn="' + re.escape(dn) + r'" mech=SIMPLE bind_ssf=\d+ '
        r'ssf=(\d+)', server.log())]


# -- TLS -----------------------------------------------------------------

def test_ldaps_with_verification(authrelay, slapd_factory, pki):
    s = slapd_factory()
    d = authrelay(config=ldap_config(s, uris=[s.ldaps_uri],
                                     ca_file=str(pki.ca_cert)), pam="system")
    r, _ = attempt(d)
    check(r, 235, "2.7.0", "ldaps://")
    ssf = tls_binds(s, user_dn("alice"))
    assert ssf and all(x > 0 for x in ssf), f"user binds not over TLS: {ssf}"


def test_starttls_with_verification(authrelay, slapd_factory, pki):
    s = slapd_factory()
    d = authrelay(config=ldap_config(s, starttls=True,
                                     ca_file=str(pki.ca_cert)), pam="system")
    r, _ = attempt(d)
    check(r, 235, "2.7.0", "ldap:// with StartTLS")
    r, _ = attempt(d, password="wrong")
    check(r, 535, "5.7.8", "wrong password over StartTLS")
    assert "EXT oid=1.3.6.1.4.1.1466.20037" in s.log(), "no StartTLS seen"
    # Every bind, the service account's included, after StartTLS.
    for dn in (user_dn("alice"), ldap_config(s)["ldap"]["bind_dn"]):
        ssf = tls_binds(s, dn)
        assert ssf and all(x > 0 for x in ssf), \
            f"binds as {dn} not over TLS: {ssf}"


@pytest.mark.parametrize("how", ["ldaps", "starttls"])
def test_wrong_ca_is_454_and_no_bind_is_sent(authrelay, slapd_factory,
                                             tmp_path, how):
    s = slapd_factory()
    other = make_other_ca(tmp_path / "other-ca")
    ldap = {"ca_file": str(other)}
    if how == "ldaps":
        ldap["uris"] = [s.ldaps_uri]
    else:
        ldap["starttls"] = True
    d = authrelay(config=ldap_config(s, **ldap), pam="system")
    binds = s.bind_count()
    r, _ = attempt(d)
    check(r, 454, "4.7.0", f"{how} with the wrong CA")
    assert s.bind_count() == binds, "a bind went over an unverified link"


def test_certificate_for_another_name_is_454(authrelay, slapd_factory, pki,
                                             tmp_path):
    """A certificate from the right CA for ldap.elsewhere.example: the
    name in the URI (127.0.0.1) is not in it."""
    cert, key = make_cert_for(pki, tmp_path / "certs",
                              "DNS:ldap.elsewhere.example")
    s = slapd_factory("wrongname", cert=cert, key=key)
    d = authrelay(config=ldap_config(s, uris=[s.ldaps_uri],
                                     ca_file=str(pki.ca_cert)), pam="system")
    r, _ = attempt(d)
    check(r, 454, "4.7.0", "ldaps:// to a server with another name")


# -- failover and outages ------------------------------------------------

def two(slapd_factory):
    return slapd_factory("first"), slapd_factory("second")


def test_first_down_from_the_start(authrelay, slapd_factory):
    a, b = two(slapd_factory)
    a.stop()
    d = authrelay(config=ldap_config(a, b, timeout=f"{TIMEOUT}s"),
                  pam="system")
    r, _ = attempt(d)
    check(r, 235, "2.7.0", "first down, second up")
    assert b.bind_count(user_dn("alice")) == 1


def test_first_killed_auth_still_works(authrelay, slapd_factory):
    a, b = two(slapd_factory)
    d = authrelay(config=ldap_config(a, b, timeout=f"{TIMEOUT}s"),
                  pam="system")
    for _ in range(2):
        r, _ = attempt(d)
        check(r, 235, "2.7.0", "both up: the first serves")
    assert b.bind_count(user_dn("alice")) == 0
    a.kill()
    for i in range(3):
        r, _ = attempt(d)
        check(r, 235, "2.7.0", f"first killed, attempt {i}")
    r, _ = attempt(d, password="wrong")
    check(r, 535, "5.7.8", "wrong password via the second")
    assert b.bind_count(user_dn("alice")) == 4


def test_both_stopped_is_454(authrelay, slapd_factory):
    a, b = two(slapd_factory)
    # A stopped server refuses the connection: the 454 does not wait for
    # the (long) timeout.
    d = authrelay(config=ldap_config(a, b, timeout="20s"), pam="system")
    r, _ = attempt(d)
    check(r, 235, "2.7.0", "warm-up")
    a.stop()
    b.stop()
    for password in (pw("alice"), "wrong"):
        r, elapsed = attempt(d, password=password)
        check(r, 454, "4.7.0", "both stopped")
        assert elapsed < 10, f"454 after {elapsed:.1f} s, timeout 20 s"
    with d.session() as c:
        c.expect("NOOP", 250, "2.0.0")


def test_hanging_first_is_454_within_timeout_and_nothing_else_waits(
        authrelay, slapd_factory):
    """The first server stops answering (SIGSTOP) with the worker's
    connections open to it: that AUTH is a 454 within [ldap] timeout,
    other sessions are served meanwhile, and the next AUTH goes to the
    second server."""
    a, b = two(slapd_factory)
    d = authrelay(config=one_worker(ldap_config(a, b,
                                                timeout=f"{LONG_TIMEOUT}s")),
                  pam="system")
    r, _ = attempt(d)
    check(r, 235, "2.7.0", "warm-up")
    assert b.bind_count(user_dn("alice")) == 0
    authed = d.session()
    check(authed.auth_plain("alice", pw("alice")), 235, "2.7.0", "authed")
    a.pause()
    try:
        with d.session() as c:
            t0 = time.monotonic()
            c.send("AUTH PLAIN " + plain_response("alice", pw("alice")) +
                   "\r\n")
            # Meanwhile, before that AUTH is answered, a new session and
            # an authenticated one are.
            with d.session() as other:
                other.expect("NOOP", 250, "2.0.0")
            authed.expect("NOOP", 250, "2.0.0")
            assert not c.waiting(), \
                "the hanging AUTH was answered before the other sessions"
            r = c.read_reply(timeout=LONG_TIMEOUT + 20)
            elapsed = time.monotonic() - t0
        check(r, 454, "4.7.0", "AUTH against the hanging server")
        assert LONG_TIMEOUT - 0.5 <= elapsed < LONG_TIMEOUT + FAR, \
            f"454 after {elapsed:.1f} s, timeout is {LONG_TIMEOUT} s"
        r, elapsed = attempt(d)
        check(r, 235, "2.7.0", "next AUTH, via the second server")
        assert b.bind_count(user_dn("alice")) == 1
        # The hanging server is not tried again first.
        assert elapsed < LONG_TIMEOUT / 2, \
            f"235 after {elapsed:.1f} s, timeout is {LONG_TIMEOUT} s"
    finally:
        authed.close()
        a.resume()


@pytest.mark.parametrize("how", ["ldap", "ldaps", "starttls"])
def test_hanging_only_server_is_454_within_timeout(authrelay, slapd_factory,
                                                   pki, how):
    """Paused before the worker ever connected: the connect succeeds (the
    kernel accepts), nothing answers, not even the TLS handshake; every
    AUTH is a 454 in time."""
    s = slapd_factory()
    ldap = {"timeout": f"{TIMEOUT}s", "ca_file": str(pki.ca_cert)}
    if how == "ldaps":
        ldap["uris"] = [s.ldaps_uri]
    elif how == "starttls":
        ldap["starttls"] = True
    d = authrelay(config=ldap_config(s, **ldap), pam="system")
    s.pause()
    try:
        for _ in range(2):
            r, elapsed = attempt(d)
            check(r, 454, "4.7.0", "hanging server")
            assert elapsed < FAR, \
                f"454 after {elapsed:.1f} s, timeout is {TIMEOUT} s"
    finally:
        s.resume()
    # Answering again: once the server is back, AUTH works.
    deadline = time.monotonic() + 40
    while True:
        r, _ = attempt(d)
        if r.code == 235 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check(r, 235, "2.7.0", "after SIGCONT")


def test_restarted_directory_next_auth_works(authrelay, slapd_factory):
    """slapd restarts (its connections to us are gone): the very next AUTH
    works, without restarting authrelay or its worker."""
    s = slapd_factory()
    d = authrelay(config=one_worker(ldap_config(s, timeout=f"{TIMEOUT}s")),
                  pam="system")
    r, _ = attempt(d)
    check(r, 235, "2.7.0", "before the restart")
    workers = d.worker_pids()
    assert len(workers) == 1, workers
    s.restart()
    r, _ = attempt(d)
    check(r, 235, "2.7.0", "first AUTH after the restart")
    r, _ = attempt(d, password="wrong")
    check(r, 535, "5.7.8", "wrong password after the restart")
    assert d.worker_pids() == workers, "the worker was replaced"


def test_connections_are_kept_and_user_binds_have_their_own(authrelay,
                                                            slapd_factory):
    """One worker, many AUTHs: two connections (search, user binds),
    opened once; the service account binds once; user binds never happen
    on the search connection."""
    s = slapd_factory()
    accepts = s.log().count(" ACCEPT from ")
    d = authrelay(config=one_worker(ldap_config(s)), pam="system")
    for i in range(6):
        r, _ = attempt(d, password=None if i % 2 else "wrong")
        check(r, 235 if i % 2 else 535, None, f"AUTH {i}")
    check(attempt(d, "bob")[0], 235, "2.7.0", "another user")
    log = s.log()
    assert log.count(" ACCEPT from ") - accepts == 2, "connections not kept"
    service = ldap_config(s)["ldap"]["bind_dn"]
    assert s.bind_count(service) == 1
    conns = {}
    for m in re.finditer(r' conn=(\d+) op=\d+ BIND dn="([^"]*)" method=',
                         log):
        conns.setdefault(m.group(2).lower(), set()).add(m.group(1))
    user_conns = (conns[user_dn("alice").lower()] |
                  conns[user_dn("bob").lower()])
    assert len(user_conns) == 1, conns
    assert not user_conns & conns[service.lower()], conns
