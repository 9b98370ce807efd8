"""authrelay-token (oauth2/token.c) against a local HTTPS token endpoint
(token_endpoint.py): each grant fetches a token the endpoint issued;
each fault gives the right one line (OK / TEMPFAIL / PERMFAIL) and exit
status (0 / 75 / 1); the endpoint's request count shows what was asked;
no client secret or private key ever appears in what the program says.
"""

import os
import subprocess

import pytest

from conftest import BUILDDIR, base_env, sanitizer_env
from token_endpoint import (endpoint, make_client_certificate,  # noqa: F401
                            make_service_account)

TOKEN_BIN = os.environ.get("AUTHRELAY_TOKEN_BIN") or \
    str(BUILDDIR / "oauth2" / "authrelay-token")
CLIENT_ID = "6a7b8c9d-0000-4000-8000-00000000c1d0"
CLIENT_SECRET = "s3cr3t~Value.with+special=chars/ok"
MAILBOX = "scanner@example.com"
EX_TEMPFAIL = 75


@pytest.fixture
def secret_file(tmp_path):
    p = tmp_path / "client.secret"
    p.write_text(CLIENT_SECRET + "\n")
    p.chmod(0o600)
    return p


def run_token(conf_path, user=None, timeout=60):
    """authrelay-token -c FILE [--user U] -> (status, stdout, stderr)."""
    if not os.access(TOKEN_BIN, os.X_OK):
        pytest.fail(f"{TOKEN_BIN} not built")
    argv = [TOKEN_BIN, "-c", str(conf_path)]
    if user is not None:
        argv += ["--user", user]
    r = subprocess.run(argv, env=base_env(sanitizer_env(False)),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def one_line(out):
    lines = out.split("\n")
    assert len(lines) == 2 and lines[1] == "", \
        f"got {out!r}, want exactly one line"
    return lines[0]


def secret_config(config_for_check, pki, endpoint, secret_file, **more):
    relay = {"auth_mechanism": "xoauth2", "auth_user": MAILBOX,
             "oauth2_grant": "client_credentials",
             "oauth2_token_url": endpoint.url,
             "oauth2_client_id": CLIENT_ID,
             "oauth2_client_secret_file": str(secret_file),
             "oauth2_ca_file": str(pki.ca_cert),
             "oauth2_timeout": "5s"}
    relay.update(more)
    return config_for_check({"relay": relay})[0]


def assert_no_secret(*texts, secrets=(CLIENT_SECRET,)):
    for t in texts:
        for s in secrets:
            for part in (s, s.strip()):
                assert part not in t, "a secret appeared in the output"


# --------------------------------------------------------------------------
# Grants

def test_client_secret_grant_prints_the_issued_token(config_for_check, pki,
                                                     endpoint, secret_file):
    endpoint.add_client_secret(CLIENT_ID, CLIENT_SECRET)
    conf = secret_config(config_for_check, pki, endpoint, secret_file)
    rc, out, err = run_token(conf)
    line = one_line(out)
    word, expires, token = line.split(" ")
    assert (rc, word, expires) == (0, "OK", "3600"), (rc, line, err)
    assert token in endpoint.tokens_issued()
    assert endpoint.requests == 1
    assert endpoint.grants == [("client_secret", CLIENT_ID, None)]
    form = endpoint.forms[0]
    assert form["scope"] == "https://outlook.office365.com/.default"
    assert form["client_secret"] == CLIENT_SECRET
    assert_no_secret(out, err)


def test_client_certificate_grant_signs_an_assertion(config_for_check, pki,
                                                     endpoint, tmp_path):
    cert, key, cert_pem = make_client_certificate(tmp_path)
    endpoint.add_client_certificate(CLIENT_ID, cert_pem)
    conf = config_for_check({"relay": {
        "auth_mechanism": "xoauth2", "auth_user": MAILBOX,
        "oauth2_grant": "client_credentials",
        "oauth2_token_url": endpoint.url, "oauth2_client_id": CLIENT_ID,
        "oauth2_client_certificate": str(cert),
        "oauth2_client_key": str(key),
        "oauth2_ca_file": str(pki.ca_cert)}})[0]
    for n in (1, 2):
        rc, out, err = run_token(conf)
        word, _, token = one_line(out).split(" ")
        assert (rc, word) == (0, "OK"), (rc, out, err)
        assert token in endpoint.tokens_issued()
        assert endpoint.requests == n
    # Each assertion is new (jti), none carries the secret part.
    assert [g[0] for g in endpoint.grants] == ["client_assertion"] * 2
    assert "client_secret" not in endpoint.forms[0]
    assert_no_secret(out, err, secrets=(key.read_text(),))


def test_client_certificate_not_registered_is_invalid_client(
        config_for_check, pki, endpoint, tmp_path):
    registered = tmp_path / "registered"
    registered.mkdir()
    _, _, other_pem = make_client_certificate(registered)
    endpoint.add_client_certificate(CLIENT_ID, other_pem)
    cert, key, _ = make_client_certificate(tmp_path)
    conf = config_for_check({"relay": {
        "auth_mechanism": "xoauth2", "auth_user": MAILBOX,
        "oauth2_grant": "client_credentials",
        "oauth2_token_url": endpoint.url, "oauth2_client_id": CLIENT_ID,
        "oauth2_client_certificate": str(cert),
        "oauth2_client_key": str(key),
        "oauth2_ca_file": str(pki.ca_cert)}})[0]
    rc, out, err = run_token(conf)
    line = one_line(out)
    assert rc == 1 and line.startswith("PERMFAIL "), (rc, line, err)
    assert "invalid_client" in line and "AADSTS700027" in line, line
    assert endpoint.requests == 1


@pytest.mark.parametrize("user_arg, want_sub", [
    (None, MAILBOX),                        # auth_user
    ("Bob@Example.com", "bob@example.com"),  # --user (per-user identity)
])
def test_jwt_bearer_grant_for_the_mailbox(config_for_check, pki, endpoint,
                                          tmp_path, user_arg, want_sub):
    sa, pub, pem = make_service_account(tmp_path, token_uri=endpoint.url)
    endpoint.add_service_account("relay@project.iam.gserviceaccount.com",
                                 pub, [MAILBOX, "bob@example.com"])
    conf = config_for_check({"relay": {
        "auth_mechanism": "xoauth2", "auth_user": MAILBOX,
        "oauth2_grant": "jwt_bearer",
        "oauth2_service_account_file": str(sa),
        "oauth2_ca_file": str(pki.ca_cert)}})[0]
    rc, out, err = run_token(conf, user=user_arg)
    word, expires, token = one_line(out).split(" ")
    assert (rc, word, expires) == (0, "OK", "3600"), (rc, out, err)
    assert endpoint.check_token(want_sub, token)
    assert endpoint.grants == [("jwt_bearer",
                                "relay@project.iam.gserviceaccount.com",
                                want_sub)]
    assert_no_secret(out, err, secrets=(pem,))


def test_jwt_bearer_without_delegation_is_unauthorized_client(
        config_for_check, pki, endpoint, tmp_path):
    sa, pub, _ = make_service_account(tmp_path, token_uri=endpoint.url)
    endpoint.add_service_account("relay@project.iam.gserviceaccount.com",
                                 pub, ["someone.else@example.com"])
    conf = config_for_check({"relay": {
        "auth_mechanism": "oauthbearer", "auth_user": MAILBOX,
        "oauth2_grant": "jwt_bearer",
        "oauth2_service_account_file": str(sa),
        "oauth2_ca_file": str(pki.ca_cert)}})[0]
    rc, out, err = run_token(conf)
    line = one_line(out)
    assert rc == 1 and line.startswith("PERMFAIL "), (rc, line, err)
    assert "unauthorized_client" in line and "delegation" in line, line


def test_sender_identity_needs_a_user(config_for_check, pki, endpoint,
                                      secret_file):
    conf = secret_config(config_for_check, pki, endpoint, secret_file,
                         auth_user="@sender")
    rc, out, _ = run_token(conf)
    assert (rc, one_line(out)) == (
        1, "PERMFAIL auth_user = @sender: give the mailbox with --user")
    assert endpoint.requests == 0


# --------------------------------------------------------------------------
# Faults

FAULTS = [
    # (fault, expires_in, rc, line starts, words in line, requests)
    ("invalid_client", 3600, 1, "PERMFAIL", ["invalid_client",
                                            "AADSTS7000215"], 1),
    ("consent", 3600, 1, "PERMFAIL", ["consent missing", "AADSTS65001"], 1),
    ("server_error", 3600, EX_TEMPFAIL, "TEMPFAIL",
     ["temporarily_unavailable", "HTTP 503"], 1),
    (None, 5, 0, "OK 5 ", [], 1),
]


@pytest.mark.parametrize("fault, expires_in, want_rc, want_start, words, "
                         "want_requests", FAULTS)
def test_endpoint_faults(config_for_check, pki, endpoint, secret_file,
                         fault, expires_in, want_rc, want_start, words,
                         want_requests):
    endpoint.add_client_secret(CLIENT_ID, CLIENT_SECRET)
    endpoint.fault = fault
    endpoint.expires_in = expires_in
    conf = secret_config(config_for_check, pki, endpoint, secret_file)
    rc, out, err = run_token(conf)
    line = one_line(out)
    assert rc == want_rc and line.startswith(want_start), \
        f"got {rc} {line!r}, want {want_rc} {want_start}...; {err}"
    for w in words:
        assert w in line, f"got {line!r}, want {w!r} in it"
    assert endpoint.requests == want_requests
    assert_no_secret(out, err)


def test_endpoint_down_is_tempfail(config_for_check, pki, endpoint,
                                   secret_file):
    endpoint.add_client_secret(CLIENT_ID, CLIENT_SECRET)
    conf = secret_config(config_for_check, pki, endpoint, secret_file)
    endpoint.down()
    rc, out, err = run_token(conf)
    line = one_line(out)
    assert rc == EX_TEMPFAIL and line.startswith(
        "TEMPFAIL token endpoint unreachable"), (rc, line, err)
    endpoint.up()
    rc, out, err = run_token(conf)
    assert rc == 0 and one_line(out).startswith("OK 3600 "), (rc, out, err)
    assert endpoint.requests == 1


def test_slow_endpoint_is_bounded_by_oauth2_timeout(config_for_check, pki,
                                                    endpoint, secret_file):
    endpoint.add_client_secret(CLIENT_ID, CLIENT_SECRET)
    endpoint.slow = 4
    conf = secret_config(config_for_check, pki, endpoint, secret_file,
                         oauth2_timeout="1s")
    rc, out, err = run_token(conf, timeout=30)
    line = one_line(out)
    assert rc == EX_TEMPFAIL and "unreachable" in line and \
        "imeout" in line, (rc, line, err)
    assert endpoint.requests == 1


def test_endpoint_certificate_is_verified(config_for_check, pki, endpoint,
                                          secret_file):
    """Without oauth2_ca_file the system store is used, which does not
    trust the test CA: no request is made, the secret is never sent."""
    endpoint.add_client_secret(CLIENT_ID, CLIENT_SECRET)
    conf = secret_config(config_for_check, pki, endpoint, secret_file,
                         oauth2_ca_file=None)
    rc, out, err = run_token(conf)
    line = one_line(out)
    assert rc == EX_TEMPFAIL and line.startswith("TEMPFAIL token endpoint "
                                                 "unreachable"), line
    assert "certificate" in line.lower(), line
    assert endpoint.requests == 0


def test_unreadable_secret_is_permfail_without_request(config_for_check,
                                                       pki, endpoint,
                                                       tmp_path):
    conf = secret_config(config_for_check, pki, endpoint,
                         tmp_path / "missing.secret")
    rc, out, _ = run_token(conf)
    line = one_line(out)
    assert rc == 1 and line.startswith("PERMFAIL cannot open "
                                       "oauth2_client_secret_file"), line
    assert endpoint.requests == 0
