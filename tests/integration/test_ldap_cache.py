"""The credential cache (proxy/auth_cache.c) in front of a real slapd: a
repeat login with the same password never reaches the directory, a
changed password is honoured once cache_ttl has passed, a wrong password
for a cached user is still refused (and drops the entry), and a reload
empties the cache."""

import signal
import time

from harness import check
from slapd import USERS, ldap_config, slapd_factory, user_dn  # noqa: F401

TTL = 3.0


def login(d, user, password):
    with d.session() as c:
        return c.auth_plain(user, password)


def start(authrelay, server, ttl=f"{TTL:g}s"):
    conf = ldap_config(server)
    conf["auth"]["cache_ttl"] = ttl
    return authrelay(config=conf, pam="system")


def test_second_login_does_not_reach_the_directory(authrelay, slapd_factory):
    s = slapd_factory("cache")
    d = start(authrelay, s)
    alice = user_dn("alice")
    pw = USERS["alice"]["password"]
    check(login(d, "alice", pw), 235, "2.7.0", "first login")
    binds = s.bind_count(alice)
    assert binds >= 1, "the first login binds as alice"
    for i in range(3):
        check(login(d, "alice", pw), 235, "2.7.0", f"cached login {i}")
    assert s.bind_count(alice) == binds, \
        "a cached login must not bind as the user again"
    assert "cached=yes" in d.log()


def test_changed_password_is_honoured_after_the_ttl(authrelay, slapd_factory):
    s = slapd_factory("cache-ttl")
    d = start(authrelay, s)
    old = USERS["alice"]["password"]
    check(login(d, "alice", old), 235, "2.7.0", "old password")
    s.set_password("alice", "N3w-Passw0rd")
    # Within the TTL the cache still answers for the old password...
    check(login(d, "alice", old), 235, "2.7.0", "old password, cached")
    # ...and the new one goes to the directory, which takes it.
    check(login(d, "alice", "N3w-Passw0rd"), 235, "2.7.0", "new password")
    time.sleep(TTL + 0.5)
    check(login(d, "alice", old), 535, "5.7.8",
          "old password after the TTL")
    check(login(d, "alice", "N3w-Passw0rd"), 235, "2.7.0",
          "new password after the TTL")


def test_wrong_password_for_a_cached_user_is_535(authrelay, slapd_factory):
    s = slapd_factory("cache-wrong")
    d = start(authrelay, s)
    alice = user_dn("alice")
    pw = USERS["alice"]["password"]
    check(login(d, "alice", pw), 235, "2.7.0", "first login")
    check(login(d, "alice", "not-" + pw), 535, "5.7.8", "wrong password")
    before = s.bind_count(alice)
    # The failure dropped the entry: the right password binds again.
    check(login(d, "alice", pw), 235, "2.7.0", "right password again")
    assert s.bind_count(alice) == before + 1


def test_cache_ttl_zero_always_asks(authrelay, slapd_factory):
    s = slapd_factory("cache-off")
    d = start(authrelay, s, ttl="0")
    alice = user_dn("alice")
    pw = USERS["alice"]["password"]
    check(login(d, "alice", pw), 235, "2.7.0")
    before = s.bind_count(alice)
    check(login(d, "alice", pw), 235, "2.7.0")
    assert s.bind_count(alice) == before + 1


def test_reload_empties_the_cache(authrelay, slapd_factory):
    s = slapd_factory("cache-reload")
    d = start(authrelay, s, ttl="1h")
    alice = user_dn("alice")
    pw = USERS["alice"]["password"]
    check(login(d, "alice", pw), 235, "2.7.0")
    before = s.bind_count(alice)
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and \
            "configuration reloaded" not in d.log():
        time.sleep(0.05)
    assert "configuration reloaded" in d.log()
    check(login(d, "alice", pw), 235, "2.7.0")
    assert s.bind_count(alice) == before + 1, \
        "after a reload the directory is asked again"


def test_group_rate_through_the_directory(authrelay, slapd_factory):
    """[policy] group_rate with a group DN: the worker reports the
    (nested) group and the daemon applies its limit; a cached login
    keeps the group. carol is in cn=top through cn=mid and cn=leaf."""
    from slapd import group_dn
    s = slapd_factory("grouprate")
    conf = ldap_config(s, nested_groups="yes")
    conf["auth"]["cache_ttl"] = "1h"
    conf["policy"] = {"sender_check": "off", "user_rate": "1/1h",
                      "group_rate": f"2/1h {group_dn('top')}"}
    d = authrelay(config=conf, pam="system")

    def mail(user):
        with d.session() as c:
            check(c.auth_plain(user, USERS[user]["password"]), 235, "2.7.0")
            return c.cmd("MAIL FROM:<x@example.com>")

    check(mail("carol"), 250, None, "carol 1 (group limit 2)")
    check(mail("carol"), 250, None, "carol 2, a cached login")
    check(mail("carol"), 450, "4.7.1", "carol 3")
    check(mail("alice"), 250, None, "alice 1 (user_rate 1)")
    check(mail("alice"), 450, "4.7.1", "alice 2")
