"""authrelay -t: validate the config and exit 0, or exit 1 with one
FILE:LINE: message per error on stderr; never start listeners."""

import re
import socket
import subprocess

import pytest

from conftest import AUTHRELAY_BIN, base_env, require_daemon, run_check


def line_of(text, needle, nth=1):
    n = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            n += 1
            if n == nth:
                return i
    raise AssertionError(f"{needle!r} not in the config")


def assert_errors(r, path, lines):
    """Exit 1, and a "PATH:LINE: message" line for each of lines."""
    assert r.returncode == 1, \
        f"exit {r.returncode}, want 1; stderr:\n{r.stderr}"
    for n in lines:
        pat = re.compile(rf"^{re.escape(str(path))}:{n}: \S", re.M)
        assert pat.search(r.stderr), \
            f"no '{path}:{n}: message' line in stderr:\n{r.stderr}"


def test_good_config_exits_0(config_for_check):
    path, _ = config_for_check()
    r = run_check(path)
    assert r.returncode == 0, f"exit {r.returncode}; stderr:\n{r.stderr}"


def test_check_does_not_bind_listeners(config_for_check):
    """The ports of the listen entries are taken by someone else: -t still
    says the config is fine, because it never binds them."""
    holders = []
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        holders.append(s)
        ports.append(s.getsockname()[1])
    try:
        path, _ = config_for_check({"server": {"listen": [
            f"127.0.0.1:{ports[0]} starttls", f"127.0.0.1:{ports[1]} tls"]}})
        r = run_check(path)
        assert r.returncode == 0, f"exit {r.returncode}:\n{r.stderr}"
    finally:
        for s in holders:
            s.close()


BAD = {
    "unknown-key": ({"server": {"frobnicate": "yes"}}, "frobnicate"),
    "bad-range": ({"server": {"max_recipients": 0}}, "max_recipients"),
    "bad-duration": ({"server": {"command_timeout": "soon"}},
                     "command_timeout"),
    "bad-size": ({"server": {"max_message_size": "huge"}},
                 "max_message_size"),
    "bad-listen-mode": ({"server": {"listen": "127.0.0.1:2525 plaintext"}},
                        "listen"),
    "bad-backend": ({"auth": {"backend": "kerberos"}}, "backend"),
    "bad-mechanism": ({"auth": {"mechanisms": "PLAIN CRAM-MD5"}},
                      "mechanisms"),
    "bad-bool": ({"server": {"proxy_protocol": "perhaps"}},
                 "proxy_protocol"),
    "bad-min-version": ({"tls": {"min_version": "SSLv3"}}, "min_version"),
    "missing-cert-file": ({"tls": {"cert": "/nonexistent/cert.pem",
                                   "key": "/nonexistent/key.pem"}}, "cert"),
    "missing-worker": ({"auth": {"worker_path": "/nonexistent/worker"}},
                       "worker_path"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_value_is_reported_with_its_line(config_for_check, case):
    overrides, key = BAD[case]
    path, text = config_for_check(overrides)
    n = line_of(text, f"{key} =")
    assert_errors(run_check(path), path, [n])


def test_unknown_section_is_reported_with_its_line(config_for_check):
    path, text = config_for_check({"nonsense": {"a": "b"}})
    assert_errors(run_check(path), path, [line_of(text, "[nonsense]")])


def test_repeated_single_key_is_an_error(config_for_check):
    path, text = config_for_check({"server": {"hostname": ["a.example",
                                                          "b.example"]}})
    assert_errors(run_check(path), path, [line_of(text, "hostname =", 2)])


def test_line_without_equals_is_an_error(config_for_check):
    _, text = config_for_check()
    text = text.replace("[server]\n", "[server]\nthis is not a key\n", 1)
    path, text = config_for_check(text=text)
    assert_errors(run_check(path), path, [line_of(text, "this is not")])


def test_every_error_is_reported(config_for_check):
    path, text = config_for_check({"server": {"frobnicate": "1",
                                              "max_recipients": 0},
                                   "auth": {"cache_ttl": "forever"}})
    assert_errors(run_check(path), path,
                  [line_of(text, "frobnicate ="),
                   line_of(text, "max_recipients ="),
                   line_of(text, "cache_ttl =")])


def test_comments_and_blank_lines_are_fine(config_for_check):
    _, text = config_for_check()
    text = "# authrelay test\n; another comment\n\n" + text.replace(
        "[tls]\n", "[tls]\n   # indented comment\n\n", 1)
    path, _ = config_for_check(text=text)
    r = run_check(path)
    assert r.returncode == 0, f"exit {r.returncode}:\n{r.stderr}"


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_cert_not_matching_key_is_an_error(config_for_check, pki, which):
    certs = [str(pki.rsa_cert), str(pki.ec_cert)]
    keys = [str(pki.rsa_key), str(pki.ec_key)]
    i = 0 if which == "rsa" else 1
    keys[i] = str(pki.other_rsa_key)
    path, text = config_for_check({"tls": {"cert": certs, "key": keys}})
    r = run_check(path)
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    cert_line = line_of(text, "cert =", i + 1)
    key_line = line_of(text, "key =", i + 1)
    assert re.search(rf"^{re.escape(str(path))}:({cert_line}|{key_line}): ",
                     r.stderr, re.M), \
        f"no error at line {cert_line} or {key_line}:\n{r.stderr}"


def test_cert_without_key_is_an_error(config_for_check, pki):
    path, _ = config_for_check({"tls": {"cert": [str(pki.rsa_cert),
                                                 str(pki.ec_cert)],
                                        "key": str(pki.rsa_key)}})
    r = run_check(path)
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert str(path) in r.stderr, r.stderr


def test_missing_config_file_is_an_error(tmp_path):
    r = run_check(tmp_path / "no-such.conf")
    assert r.returncode == 1, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert "no-such.conf" in r.stderr


def test_daemon_refuses_to_start_on_a_bad_config(config_for_check):
    require_daemon()
    path, _ = config_for_check({"server": {"frobnicate": "1"}})
    r = subprocess.run([str(AUTHRELAY_BIN), "-c", str(path)],
                       env=base_env({}), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "started on an invalid config"
    assert f"{path}:" in r.stderr, r.stderr


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag):
    require_daemon()
    r = subprocess.run([str(AUTHRELAY_BIN), flag], capture_output=True,
                       text=True, timeout=30, env=base_env({}))
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+\.\d+", r.stdout + r.stderr), r.stdout


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag):
    require_daemon()
    r = subprocess.run([str(AUTHRELAY_BIN), flag], capture_output=True,
                       text=True, timeout=30, env=base_env({}))
    assert r.returncode == 0, r.stderr
    assert "-c" in r.stdout + r.stderr and "-t" in r.stdout + r.stderr


def test_unknown_option_is_an_error():
    require_daemon()
    r = subprocess.run([str(AUTHRELAY_BIN), "--frobnicate"],
                       capture_output=True, text=True, timeout=30,
                       env=base_env({}))
    assert r.returncode != 0


# --------------------------------------------------------------------------
# Semantic checks: the names the config gives must work on this system.
# A problem that would refuse every login is an error (exit 1, "PATH:LINE:
# message"); one that may be intended a warning (exit 0, "PATH:LINE:
# warning: message"). NSS is nss_wrapper's (conftest.write_pam_files:
# mail-senders has alice and carol, staff has bob); PAM service files are
# pam_wrapper's directory (authrelay, other, ...).

from conftest import sanitizer_env, write_pam_files  # noqa: E402


@pytest.fixture
def semantic_check(tmp_path, config_for_check):
    """(overrides, pam_dir_files=None) -> (CompletedProcess, path, text).
    pam_dir_files: names of the files the PAM service directory keeps
    (None: all that write_pam_files made)."""
    (tmp_path / "pam").mkdir()
    pam = write_pam_files(tmp_path / "pam")
    # A group without members, and nobody's primary group.
    with open(pam.nss_group, "a") as f:
        f.write("nobody-here:x:2500:\n")

    def run(overrides, pam_dir_files=None):
        if pam_dir_files is not None:
            for p in pam.service_dir.iterdir():
                if p.name not in pam_dir_files:
                    p.unlink()
        path, text = config_for_check(overrides)
        env = base_env({**pam.env(nss=True), **sanitizer_env(True)})
        r = subprocess.run([str(AUTHRELAY_BIN), "-t", "-c", str(path)],
                           env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
        return r, path, text
    return run


def assert_warning(r, path, line, *words):
    assert r.returncode == 0, \
        f"exit {r.returncode}, want 0 (a warning); stderr:\n{r.stderr}"
    pat = re.compile(rf"^{re.escape(str(path))}:{line}: warning: (.*)$",
                     re.M)
    m = pat.search(r.stderr)
    assert m, f"no '{path}:{line}: warning: ...' line in stderr:\n{r.stderr}"
    for w in words:
        assert w in m.group(1), f"warning {m.group(1)!r} does not say {w!r}"
    assert "configuration is valid" in r.stdout, r.stdout


def assert_error(r, path, line, *words):
    assert_errors(r, path, [line])
    m = re.search(rf"^{re.escape(str(path))}:{line}: (.*)$", r.stderr, re.M)
    assert not m.group(1).startswith("warning:"), \
        f"got a warning, want an error: {m.group(0)}"
    for w in words:
        assert w in m.group(1), f"error {m.group(1)!r} does not say {w!r}"
    assert r.stdout == "", f"stdout on an invalid config: {r.stdout!r}"


LDAP = {"auth": {"backend": "ldap"},
        "ldap": {"uri": "ldap://127.0.0.1:389", "base": "dc=example,dc=com"}}


def test_valid_config_prints_one_line_and_no_warning(semantic_check):
    r, path, _ = semantic_check({
        "auth": {"require_group": "mail-senders"},
        "policy": {"send_as": "helpdesk@example.com staff",
                   "group_rate": "10/1h mail-senders",
                   "group_recipient_rate": "100/1h staff"}})
    assert r.returncode == 0, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert r.stderr == "", f"got stderr {r.stderr!r}, want none"
    assert r.stdout.splitlines() == [f"{path}: configuration is valid"], \
        f"got stdout {r.stdout!r}"


# case -> (overrides, key whose line is reported, words in the message)
ERRORS = {
    "pam-require-group-missing": (
        {"auth": {"require_group": "no-such-group"}}, "require_group",
        ["no-such-group", "no such group", "every login"]),
    "pam-require-group-is-a-dn": (
        {"auth": {"require_group": "cn=mail-senders,ou=groups,dc=example"}},
        "require_group", ["not DNs", "every login"]),
    "ldap-require-group-not-a-dn": (
        {**LDAP, "auth": {"backend": "ldap", "require_group": "mail-senders"}},
        "require_group", ["not a DN", "every login"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_semantic_error(semantic_check, case):
    overrides, key, words = ERRORS[case]
    r, path, text = semantic_check(overrides)
    assert_error(r, path, line_of(text, f"{key} ="), *words)


def test_missing_pam_service_without_other_is_an_error(semantic_check):
    r, path, text = semantic_check({"pam": {"service": "authrelay-typo"}},
                                   pam_dir_files={"authrelay"})
    assert_error(r, path, line_of(text, "service ="), "authrelay-typo",
                 "every login")


WARNINGS = {
    "pam-one-of-two-require-groups-missing": (
        {"auth": {"require_group": ["mail-senders", "no-such-group"]}},
        ("require_group =", 2), ["no-such-group", "no such group"]),
    "pam-require-group-empty": (
        {"auth": {"require_group": "nobody-here"}},
        ("require_group =", 1), ["nobody-here", "no members"]),
    "pam-send-as-group-missing": (
        {"policy": {"send_as": "sales@example.com no-such-group"}},
        ("send_as =", 1), ["no-such-group", "sales@example.com"]),
    "pam-group-rate-group-missing": (
        {"policy": {"group_rate": "10/1h no-such-group"}},
        ("group_rate =", 1), ["no-such-group", "nobody"]),
    "pam-group-recipient-rate-group-missing": (
        {"policy": {"group_recipient_rate": "10/1h no-such-group"}},
        ("group_recipient_rate =", 1), ["no-such-group", "nobody"]),
    "ldap-one-of-two-require-groups-not-a-dn": (
        {**LDAP, "auth": {"backend": "ldap", "require_group": [
            "cn=mail-senders,ou=groups,dc=example,dc=com", "senders"]}},
        ("require_group =", 2), ["senders", "not a DN"]),
    "ldap-send-as-group-not-a-dn": (
        {**LDAP, "policy": {"send_as": "sales@example.com sales"}},
        ("send_as =", 1), ["not a DN", "sales@example.com"]),
    "ldap-group-rate-group-not-a-dn": (
        {**LDAP, "policy": {"group_rate": "10/1h bulk"}},
        ("group_rate =", 1), ["not a DN"]),
}


@pytest.mark.parametrize("case", list(WARNINGS))
def test_semantic_warning(semantic_check, case):
    overrides, (key, nth), words = WARNINGS[case]
    r, path, text = semantic_check(overrides)
    assert_warning(r, path, line_of(text, key, nth), *words)


def test_missing_pam_service_with_other_is_a_warning(semantic_check):
    r, path, text = semantic_check({"pam": {"service": "authrelay-typo"}})
    assert_warning(r, path, line_of(text, "service ="), "authrelay-typo",
                   "other")


@pytest.mark.parametrize("case", ["dn-groups", "no-pam-files"])
def test_ldap_config_without_problems_is_quiet(semantic_check, case):
    """DNs (escaped, spaced) are groups; PAM's files do not matter."""
    if case == "dn-groups":
        r, _, _ = semantic_check({**LDAP, "auth": {
            "backend": "ldap", "require_group": [
                "cn=mail-senders,ou=groups,dc=example,dc=com",
                "CN=Mail Senders\\2C EU,OU=Groups,DC=corp,DC=example"]},
            "policy": {"send_as": "sales@example.com cn=sales, ou=groups, "
                       "dc=example, dc=com"}})
    else:
        r, _, _ = semantic_check(LDAP, pam_dir_files=set())
    assert r.returncode == 0, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert r.stderr == "", f"got stderr {r.stderr!r}, want none"
