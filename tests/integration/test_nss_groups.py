"""[auth] require_group through NSS (getgrouplist), with nss_wrapper's
passwd and group files (see PamFiles in conftest.py): alice and carol are
in mail-senders, bob is not, dave is not known to NSS at all."""

from conftest import USERS
from harness import check


def start(authrelay, groups):
    return authrelay(nss=True, config={"auth": {"require_group": groups}})


def test_user_in_required_group_is_235(authrelay):
    d = start(authrelay, "mail-senders")
    for user in ("alice", "carol"):
        with d.session() as c:
            check(c.auth_plain(user, USERS[user]), 235, "2.7.0", user)


def test_user_not_in_required_group_is_535(authrelay):
    d = start(authrelay, "mail-senders")
    with d.session() as c:
        wrong = check(c.auth_plain("alice", "wrong"), 535, "5.7.8").raw
    with d.session() as c:
        r = check(c.auth_plain("bob", USERS["bob"]), 535, "5.7.8", "bob")
        assert r.raw == wrong, "not-in-group must look like a bad password"


def test_user_unknown_to_nss_is_535(authrelay):
    d = start(authrelay, "mail-senders")
    with d.session() as c:
        check(c.auth_plain("dave", USERS["dave"]), 535, "5.7.8", "dave")


def test_any_of_several_required_groups(authrelay):
    """require_group is repeatable: membership of any one is enough."""
    d = start(authrelay, ["mail-senders", "staff"])
    for user in ("alice", "bob"):
        with d.session() as c:
            check(c.auth_plain(user, USERS[user]), 235, "2.7.0", user)


def test_primary_group_counts(authrelay):
    """getgrouplist includes the user's primary group (from passwd)."""
    d = start(authrelay, "bob")
    with d.session() as c:
        check(c.auth_plain("bob", USERS["bob"]), 235, "2.7.0")
    with d.session() as c:
        check(c.auth_plain("alice", USERS["alice"]), 535, "5.7.8")


def test_without_require_group_any_valid_user(authrelay):
    d = authrelay(nss=True)
    for user in ("alice", "bob", "dave"):
        with d.session() as c:
            check(c.auth_plain(user, USERS[user]), 235, "2.7.0", user)
