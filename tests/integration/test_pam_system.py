"""A real PAM stack (pam_unix through Debian's common-auth and
common-account) on a throwaway local user, without pam_wrapper. Root only:
the test creates the user and an /etc/pam.d service file, and removes both
whatever happens."""

import os
import secrets
import subprocess

import pytest

from conftest import SRCDIR
from harness import check, require, require_root


def run(*argv, input=None):
    r = subprocess.run(argv, input=input, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    return r


class LocalAccounts:
    """Throwaway users, groups and PAM services, removed in cleanup()."""

    def __init__(self):
        self.users, self.groups, self.files = [], [], []
        self.errors = []

    def user(self, password, groups=()):
        name = "artest" + secrets.token_hex(4)
        run(require("useradd"), "-m", "-s", "/usr/sbin/nologin", name)
        self.users.append(name)
        run(require("chpasswd"), input=f"{name}:{password}\n")
        for g in groups:
            run(require("usermod"), "-a", "-G", g, name)
        return name

    def group(self):
        name = "artestg" + secrets.token_hex(4)
        run(require("groupadd"), name)
        self.groups.append(name)
        return name

    def service(self, text):
        name = "authrelay-test-" + secrets.token_hex(4)
        path = f"/etc/pam.d/{name}"
        with open(path, "x") as f:
            f.write(text)
        self.files.append(path)
        return name

    def cleanup(self):
        for path in self.files:
            try:
                os.unlink(path)
            except OSError as e:
                self.errors.append(f"rm {path}: {e}")
        for u in self.users:
            r = subprocess.run(["userdel", "-r", u], capture_output=True,
                               text=True, timeout=60)
            # 12: home directory could not be removed (mail spool absent).
            if r.returncode not in (0, 12):
                self.errors.append(f"userdel -r {u}: {r.stderr}")
        for g in self.groups:
            r = subprocess.run(["groupdel", g], capture_output=True,
                               text=True, timeout=60)
            if r.returncode != 0:
                self.errors.append(f"groupdel {g}: {r.stderr}")


@pytest.fixture
def accounts():
    require_root()
    for tool in ("useradd", "chpasswd", "usermod", "userdel", "groupadd",
                 "groupdel", "chage"):
        require(tool, f"{tool} (Debian package passwd)")
    require("/usr/lib/x86_64-linux-gnu/security/pam_unix.so",
            "pam_unix (libpam-modules)")
    acc = LocalAccounts()
    try:
        yield acc
    finally:
        acc.cleanup()
    assert not acc.errors, "cleanup failed: " + "; ".join(acc.errors)


COMMON = "@include common-auth\n@include common-account\n"


def shipped_service():
    path = SRCDIR / "pam" / "authrelay.pam"
    assert path.exists(), f"{path} (the installed PAM service) is missing"
    return path.read_text()


@pytest.mark.parametrize("stack", ["common", "shipped"])
def test_real_pam_stack(authrelay, accounts, stack):
    password = "Real-" + secrets.token_urlsafe(12)
    user = accounts.user(password)
    service = accounts.service(COMMON if stack == "common"
                               else shipped_service())
    d = authrelay(pam="system", config={"pam": {"service": service}})
    with d.session() as c:
        check(c.auth_plain(user, password), 235, "2.7.0", "right password")
    with d.session() as c:
        check(c.auth_login(user, password), 235, "2.7.0", "LOGIN")
    with d.session() as c:
        wrong = check(c.auth_plain(user, password + "x"), 535, "5.7.8").raw
    with d.session() as c:
        r = check(c.auth_plain("artestnosuchuser", password), 535, "5.7.8")
        assert r.raw == wrong, "unknown user must look like a bad password"

    # Expired account: pam_unix's account step refuses it.
    run("chage", "-E", "0", user)
    with d.session() as c:
        r = check(c.auth_plain(user, password), 535, "5.7.8", "expired")
        assert r.raw == wrong
    run("chage", "-E", "-1", user)
    with d.session() as c:
        check(c.auth_plain(user, password), 235, "2.7.0", "unexpired")

    # Locked account: pam_unix's auth step refuses it.
    run("usermod", "-L", user)
    with d.session() as c:
        r = check(c.auth_plain(user, password), 535, "5.7.8", "locked")
        assert r.raw == wrong


def test_real_nss_groups(authrelay, accounts):
    group = accounts.group()
    password = "Real-" + secrets.token_urlsafe(12)
    member = accounts.user(password, groups=[group])
    outsider = accounts.user(password)
    service = accounts.service(COMMON)
    d = authrelay(pam="system", config={"pam": {"service": service},
                                        "auth": {"require_group": group}})
    with d.session() as c:
        check(c.auth_plain(member, password), 235, "2.7.0", "member")
    with d.session() as c:
        check(c.auth_plain(outsider, password), 535, "5.7.8", "outsider")
