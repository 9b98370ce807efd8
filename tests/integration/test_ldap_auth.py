"""SMTP AUTH against a real OpenLDAP (slapd.py): the user found by a search
with the service account or by user_dn_template, the password checked by a
bind as the user, login names that try to widen the search or add RDNs,
the canonical name and the addresses in the worker's reply."""

import time

import pytest

from harness import b64, check
from slapd import (AUTH_OK, AUTH_PERMFAIL, PEOPLE, SERVICE_DN, USERS,
                   ldap_config, ldap_server, ldap_worker,  # noqa: F401
                   user_dn)

TEMPLATE = f"uid=%u,{PEOPLE}"
MODES = {
    "search": {},
    "template": {"user_dn_template": TEMPLATE},
}


def pw(uid):
    return USERS[uid]["password"]


@pytest.fixture(params=list(MODES))
def mode(request):
    return request.param


def start(authrelay, server, mode, **ldap):
    conf = ldap_config(server, **{**MODES[mode], **ldap})
    return authrelay(config=conf, pam="system")


def attempt(d, user, password, mech="PLAIN"):
    with d.session() as c:
        if mech == "PLAIN":
            return c.auth_plain(user, password)
        return c.auth_login(user, password)


# -- the outcomes --------------------------------------------------------

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_right_password_is_235(authrelay, ldap_server, mode, mech):
    d = start(authrelay, ldap_server, mode)
    for uid in ("alice", "carol", "jörg"):
        check(attempt(d, uid, pw(uid), mech), 235, "2.7.0", uid)


def test_wrong_password_is_535_and_the_session_goes_on(authrelay,
                                                       ldap_server, mode):
    d = start(authrelay, ldap_server, mode)
    with d.session() as c:
        check(c.auth_plain("alice", "not-the-password"), 535, "5.7.8")
        check(c.auth_plain("alice", pw("bob")), 535, "5.7.8")
        check(c.auth_plain("alice", pw("alice")), 235, "2.7.0")


def test_empty_password_is_535_and_no_bind_is_sent(authrelay, ldap_server,
                                                   mode):
    """RFC 4513 §5.1.2: a bind with a DN and no password is an
    unauthenticated bind that succeeds. It must never be sent."""
    d = start(authrelay, ldap_server, mode)
    dn = user_dn("alice")
    check(attempt(d, "alice", pw("alice")), 235, "2.7.0", "warm-up")
    before = ldap_server.bind_count(dn)
    with d.session() as c:
        check(c.auth_plain("alice", ""), 535, "5.7.8", "PLAIN, empty")
        check(c.auth_login("alice", ""), 535, "5.7.8", "LOGIN, empty")
    assert ldap_server.bind_count(dn) == before, \
        "a bind was sent for an empty password"
    # The counter counts: a wrong password is one bind more.
    check(attempt(d, "alice", "wrong"), 535, "5.7.8")
    deadline = time.monotonic() + 5
    while ldap_server.bind_count(dn) == before and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert ldap_server.bind_count(dn) == before + 1


def test_unknown_user_gets_the_same_reply_in_comparable_time(
        authrelay, ldap_server, mode):
    """Unknown user and wrong password: the same 535, octet for octet, and
    no timing difference worth measuring (failure_delay is 0 here, so this
    is the worker's own time)."""
    d = start(authrelay, ldap_server, mode)
    check(attempt(d, "alice", pw("alice")), 235, "2.7.0", "warm-up")
    times = {"wrong": [], "unknown": []}
    replies = {}
    for _ in range(5):
        for what, user in (("wrong", "alice"), ("unknown", "nosuchuser")):
            with d.session() as c:
                t0 = time.monotonic()
                r = c.auth_plain(user, "Wrong-Passw0rd")
                times[what].append(time.monotonic() - t0)
            check(r, 535, "5.7.8", what)
            replies[what] = r.raw
    assert replies["unknown"] == replies["wrong"]
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    assert abs(med["unknown"] - med["wrong"]) < 0.1, \
        f"median reply times differ: {med}"


def test_canonical_name_is_the_directory_spelling(authrelay, ldap_server,
                                                  smarthost, mode):
    """"frank" logs in as the entry uid=Frank: the name the message is
    tagged with is "Frank", as the directory spells it."""
    d = start(authrelay, ldap_server, mode)
    marker = f"canon-{mode}-{time.monotonic_ns()}"
    with d.session() as c:
        check(c.auth_plain("frank", pw("Frank")), 235, "2.7.0")
        c.expect("MAIL FROM:<frank@example.com>", 250, "2.1.0")
        c.expect("RCPT TO:<bob@example.net>", 250, "2.1.5")
        check(c.cmd("DATA"), 354, None, "DATA")
        c.send(f"From: <frank@example.com>\r\nSubject: {marker}\r\n\r\n"
               f"hello\r\n.\r\n")
        check(c.read_reply(), 250, "2.0.0", "end of DATA")
        c.quit()
    env = smarthost.wait_for(marker.encode())
    assert env is not None, "the message never reached the smarthost"
    assert b"\r\nX-Authenticated-User: Frank\r\n" in \
        b"\r\n" + env.original_content, env.original_content[:500]


def test_template_without_service_account(authrelay, ldap_server):
    """user_dn_template needs no service account: bind as the user, read
    the entry as the user."""
    conf = ldap_config(ldap_server, user_dn_template=TEMPLATE)
    del conf["ldap"]["bind_dn"]
    del conf["ldap"]["bind_password_file"]
    d = authrelay(config=conf, pam="system")
    service_binds = ldap_server.bind_count(SERVICE_DN)
    check(attempt(d, "alice", pw("alice")), 235, "2.7.0")
    check(attempt(d, "alice", "wrong"), 535, "5.7.8")
    check(attempt(d, "nosuchuser", "wrong"), 535, "5.7.8")
    assert ldap_server.bind_count(SERVICE_DN) == service_binds


def test_search_needs_the_service_account(authrelay, ldap_server):
    """The directory hides everything, base included, from anonymous
    searches: without a service account the search fails (noSuchObject
    for the base), which is the directory's problem, not the user's: 454,
    never 235 and never a 535 that blames the password."""
    conf = ldap_config(ldap_server)
    del conf["ldap"]["bind_dn"]
    del conf["ldap"]["bind_password_file"]
    d = authrelay(config=conf, pam="system")
    check(attempt(d, "alice", pw("alice")), 454, "4.7.0")
    assert "No such object" in d.log()


def test_wrong_service_password_is_454(authrelay, ldap_server, tmp_path):
    secret = tmp_path / "wrong.secret"
    secret.write_text("not-the-service-password\n")
    d = authrelay(config=ldap_config(ldap_server,
                                     bind_password_file=str(secret)),
                  pam="system")
    check(attempt(d, "alice", pw("alice")), 454, "4.7.0")
    assert "bind as " + SERVICE_DN in d.log()


# -- login names that try to be more than a name ---------------------------

INJECTIONS = [
    "*",
    "alice*",
    "*alice*",
    "a*e",
    "alice)(uid=*",
    "*)(|(uid=*",
    "alice)(|(objectClass=*",
    "alice)(userPassword=*",
    "alice\\",
    "\\2a",
    "alice,ou=x",
    "alice,ou=people,dc=example,dc=com",
    "a+uid=root",
    "root+uid=alice",
    "uid=alice",
    "#alice",
    "#616c696365",
    " #alice",
    "alice\"",
    "<alice>",
    "alice;",
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_injection_names_never_succeed(authrelay, ldap_server, mode, name):
    """Every password of every user, with a login name that would widen a
    search or add an RDN if it were not escaped: always 535, and in search
    mode no user bind at all (nobody was found)."""
    d = start(authrelay, ldap_server, mode)
    people_binds = sum(ldap_server.bind_count(user_dn(u)) for u in USERS)
    with d.session() as c:
        for uid in ("alice", "root", "bob"):
            r = c.auth_plain(name, pw(uid))
            check(r, 535, "5.7.8", f"{name!r} with {uid}'s password")
    if mode == "search":
        assert sum(ldap_server.bind_count(user_dn(u)) for u in USERS) == \
            people_binds, f"{name!r} found a user"


def test_control_characters_never_reach_the_directory(authrelay,
                                                      ldap_server, mode):
    """A NUL or CR LF in the login name (possible in AUTH LOGIN) is
    refused before any look-up: no search, no bind."""
    d = start(authrelay, ldap_server, mode)
    binds = ldap_server.bind_count()
    for name in ("alice\0", "alice\r\nuid: root", "ali\x01ce"):
        with d.session() as c:
            check(c.cmd("AUTH LOGIN"), 334, None, "AUTH LOGIN")
            r = c.cmd(b64(name))
            if r.code == 334:
                r = c.cmd(b64(pw("alice")))
            assert r.code in (501, 535), f"{name!r}: {r!r}"
    assert ldap_server.bind_count() == binds


@pytest.mark.parametrize("name", [" alice", "alice ", "ALICE"])
def test_equivalent_spellings_are_the_same_user(authrelay, ldap_worker,
                                                ldap_server, mode, name):
    """The directory's equality rule for uid ignores case and leading and
    trailing spaces: these spellings are alice herself, with her password
    only, and the canonical name is "alice"."""
    d = start(authrelay, ldap_server, mode)
    with d.session() as c:
        check(c.auth_plain(name, pw("bob")), 535, "5.7.8", "bob's password")
        check(c.auth_plain(name, pw("alice")), 235, "2.7.0",
              "alice's password")
    w = ldap_worker(ldap_config(ldap_server, **MODES[mode]))
    rep = w.auth(name, pw("alice"))
    assert (rep["result"], rep["user"]) == (AUTH_OK, "alice"), rep


# -- the worker's reply: canonical name, addresses ---------------------------

def test_reply_carries_canonical_name_and_addresses(ldap_worker, ldap_server,
                                                    mode):
    w = ldap_worker(ldap_config(
        ldap_server, **MODES[mode],
        address_attributes="mail mailAlternateAddress proxyAddresses"))
    rep = w.auth("alice", pw("alice"))
    assert rep["result"] == AUTH_OK, rep
    assert rep["user"] == "alice"
    # mail first, then mailAlternateAddress; ALICE@example.com is a
    # duplicate of alice@example.com.
    assert rep["addresses"] == ["alice@example.com", "a.lice@example.org"]

    rep = w.auth("FRANK", pw("Frank"))
    assert rep["result"] == AUTH_OK, rep
    assert rep["user"] == "Frank"
    assert rep["addresses"] == ["frank@example.com"]

    # Active Directory style: only smtp:/SMTP: values, prefix stripped,
    # the primary (SMTP:) first.
    rep = w.auth("erin", pw("erin"))
    assert rep["result"] == AUTH_OK, rep
    assert rep["addresses"] == ["erin@corp.example", "e@corp.example"]

    rep = w.auth("alice", "wrong")
    assert rep["result"] == AUTH_PERMFAIL, rep
    assert rep["user"] is None and rep["addresses"] == [], rep
    assert rep["reason"] == "Invalid credentials"

    rep = w.auth("nosuchuser", "wrong")
    assert rep["result"] == AUTH_PERMFAIL, rep
    assert rep["user"] is None and rep["addresses"] == [], rep


def test_no_address_attributes_no_addresses(ldap_worker, ldap_server):
    w = ldap_worker(ldap_config(ldap_server, address_attributes="cn"))
    rep = w.auth("alice", pw("alice"))
    assert rep["result"] == AUTH_OK, rep
    assert rep["addresses"] == []      # cn values hold no '@'
