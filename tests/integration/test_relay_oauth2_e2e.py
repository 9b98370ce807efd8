"""OAuth2 to the smarthost end to end: a client that only knows its
directory password reaches an Exchange Online-like and a Gmail-like
smarthost that take XOAUTH2 / OAUTHBEARER tokens only.

The supervisor (proxy/token_fetch.c) runs authrelay-token for each
mailbox, refreshes the fixed mailbox's token ahead of expiry, and hands
tokens to the network process, which asks for one on a miss or when the
smarthost refused one (relay_token.h).
"""

import os
import time

import pytest

from conftest import BUILDDIR, run_preflight
from harness import check
from smarthost import (SENDER, USER, message, only_message, send_data,
                       split_tagged, assert_nothing_delivered)
from token_endpoint import (endpoint, make_client_certificate,  # noqa: F401
                            make_service_account)

pytest_plugins = ["smarthost"]

TOKEN_BIN = os.environ.get("AUTHRELAY_TOKEN_BIN") or \
    str(BUILDDIR / "oauth2" / "authrelay-token")

CLIENT_ID = "6a7b8c9d-0000-4000-8000-00000000c1d0"
CLIENT_SECRET = "e2e-s3cr3t~value"
MAILBOX = "scanner@example.com"
SA_EMAIL = "relay@project.iam.gserviceaccount.com"


@pytest.fixture
def secret_file(tmp_path):
    p = tmp_path / "client.secret"
    p.write_text(CLIENT_SECRET + "\n")
    p.chmod(0o600)
    return p


def oauth_smarthost(smarthosts, endpoint, mech="XOAUTH2"):
    return smarthosts(starttls="valid", auth_mechs=(mech,),
                      token_check=endpoint.check_token)


def relay_conf(sh, pki, endpoint, mech="xoauth2", **keys):
    relay = {"smarthost": sh.address, "tls": "starttls", "tls_verify": True,
             "ca_file": str(pki.ca_cert), "auth_mechanism": mech,
             "oauth2_ca_file": str(pki.ca_cert), "oauth2_timeout": "3s",
             "token_program": TOKEN_BIN}
    relay.update(keys)
    return {"relay": relay}


def secret_keys(endpoint, secret_file, user=MAILBOX):
    endpoint.add_client_secret(CLIENT_ID, CLIENT_SECRET)
    return dict(auth_user=user, oauth2_grant="client_credentials",
                oauth2_token_url=endpoint.url, oauth2_client_id=CLIENT_ID,
                oauth2_client_secret_file=str(secret_file))


def send_one(d, marker=b"Hello.\r\n"):
    """One message in a new session: the reply to MAIL when that is not
    250 (the relay authenticates upstream when MAIL opens it, so a missing
    or refused token shows there), else the reply to the end of data."""
    c = d.authed(USER)
    msg = message(body=marker)
    r = c.cmd(f"MAIL FROM:<{SENDER}>")
    if r.code == 250:
        c.expect("RCPT TO:<bob@example.net>", 250)
        c.expect("DATA", 354)
        r = send_data(c, msg)
    c.quit()
    return r, msg


def wait_until(pred, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def deliver_with_retry(d, tries=20):
    """The first session for a mailbox may find no token yet (451 4.7.0
    while the supervisor fetches): a client retries, as clients do."""
    for _ in range(tries):
        r, msg = send_one(d)
        if r.code == 250:
            return r, msg
        check(r, 451, "4.7.0", what="MAIL while the token is fetched")
        time.sleep(0.5)
    pytest.fail("never delivered")


# --------------------------------------------------------------------------

@pytest.mark.parametrize("mech", ["xoauth2", "oauthbearer"])
def test_client_secret_grant_relays(smarthosts, authrelay, pki, endpoint,
                                    secret_file, mech):
    sh = oauth_smarthost(smarthosts, endpoint, mech.upper())
    d = authrelay(config=relay_conf(sh, pki, endpoint, mech,
                                    **secret_keys(endpoint, secret_file)))
    r, msg = deliver_with_retry(d)
    check(r, 250, "2.0.0", what="end of data")
    t = only_message(sh)
    assert split_tagged(t.data)[1] == msg
    assert sh.sessions[-1].auth[-1][:3] == (mech.upper(), MAILBOX, True)
    assert CLIENT_SECRET not in d.log()


def test_certificate_grant_relays(smarthosts, authrelay, pki, endpoint,
                                  tmp_path):
    cert, key, pem = make_client_certificate(tmp_path)
    endpoint.add_client_certificate(CLIENT_ID, pem)
    sh = oauth_smarthost(smarthosts, endpoint)
    d = authrelay(config=relay_conf(
        sh, pki, endpoint, auth_user=MAILBOX,
        oauth2_grant="client_credentials", oauth2_token_url=endpoint.url,
        oauth2_client_id=CLIENT_ID, oauth2_client_certificate=str(cert),
        oauth2_client_key=str(key)))
    r, _ = deliver_with_retry(d)
    check(r, 250, "2.0.0")
    assert key.read_text() not in d.log()


def test_jwt_bearer_per_user_identity(smarthosts, authrelay, pki, endpoint,
                                      tmp_path):
    sa, pub, pem = make_service_account(tmp_path, token_uri=endpoint.url)
    endpoint.add_service_account(SA_EMAIL, pub, [SENDER])
    sh = oauth_smarthost(smarthosts, endpoint)
    d = authrelay(config=relay_conf(
        sh, pki, endpoint, auth_user="@sender", oauth2_grant="jwt_bearer",
        oauth2_service_account_file=str(sa)))
    r, _ = deliver_with_retry(d)
    check(r, 250, "2.0.0")
    assert endpoint.grants[-1] == ("jwt_bearer", SA_EMAIL, SENDER)
    assert sh.sessions[-1].auth[-1][1] == SENDER
    assert "PRIVATE KEY" not in d.log()


def test_one_token_serves_many_sessions(smarthosts, authrelay, pki,
                                        endpoint, secret_file):
    sh = oauth_smarthost(smarthosts, endpoint)
    d = authrelay(config=relay_conf(sh, pki, endpoint,
                                    **secret_keys(endpoint, secret_file)))
    deliver_with_retry(d)
    before = endpoint.requests
    for _ in range(10):
        r, _ = send_one(d)
        check(r, 250, "2.0.0")
    assert endpoint.requests == before, "a token was fetched per session"
    assert len(sh.messages) == 11


def test_token_refreshed_before_expiry(smarthosts, authrelay, pki,
                                       endpoint, secret_file):
    endpoint.expires_in = 40        # past the 30 s margin by 10 s
    sh = oauth_smarthost(smarthosts, endpoint)
    d = authrelay(config=relay_conf(sh, pki, endpoint,
                                    **secret_keys(endpoint, secret_file)))
    deliver_with_retry(d)
    first = endpoint.requests
    assert wait_until(lambda: endpoint.requests > first, timeout=30), \
        "no refresh ahead of expiry"
    r, _ = send_one(d)
    check(r, 250, "2.0.0", what="after the refresh")


def test_endpoint_down_then_recovery(smarthosts, authrelay, pki, endpoint,
                                     secret_file):
    sh = oauth_smarthost(smarthosts, endpoint)
    keys = secret_keys(endpoint, secret_file)
    endpoint.down()
    d = authrelay(config=relay_conf(sh, pki, endpoint, **keys))
    r, _ = send_one(d)
    check(r, 451, "4.7.0", what="no token: endpoint down")
    assert_nothing_delivered(sh)
    # The loop is not stalled: another session is served at once.
    c = d.session()
    c.ehlo()
    c.quit()
    endpoint.up()
    r, _ = deliver_with_retry(d)
    check(r, 250, "2.0.0", what="after recovery")


def test_slow_endpoint_does_not_stall_sessions(smarthosts, authrelay, pki,
                                               endpoint, secret_file):
    endpoint.slow = 10
    sh = oauth_smarthost(smarthosts, endpoint)
    d = authrelay(config=relay_conf(sh, pki, endpoint,
                                    **secret_keys(endpoint, secret_file)))
    r, _ = send_one(d)
    check(r, 451, "4.7.0", what="token not there yet")
    c = d.session()
    c.expect("NOOP", 250)
    c.quit()


def test_revoked_token_is_refetched_once(smarthosts, authrelay, pki,
                                         endpoint, secret_file):
    sh = oauth_smarthost(smarthosts, endpoint)
    d = authrelay(config=relay_conf(sh, pki, endpoint,
                                    **secret_keys(endpoint, secret_file)))
    deliver_with_retry(d)
    before = endpoint.requests
    endpoint.revoke_all()
    r, _ = send_one(d)
    check(r, 451, "4.7.0", what="revoked token")
    r, _ = deliver_with_retry(d)
    check(r, 250, "2.0.0", what="after the refetch")
    assert endpoint.requests == before + 1
    assert "refused the OAuth2 token" in d.log()


def test_invalid_client_is_logged_and_temporary(smarthosts, authrelay, pki,
                                                endpoint, secret_file):
    sh = oauth_smarthost(smarthosts, endpoint)
    endpoint.fault = "invalid_client"
    d = authrelay(config=relay_conf(sh, pki, endpoint,
                                    **secret_keys(endpoint, secret_file)))
    r, _ = send_one(d)
    check(r, 451, "4.7.0")
    assert wait_until(lambda: "invalid_client" in d.log())
    assert CLIENT_SECRET not in d.log()


@pytest.mark.parametrize("profile, emulation", [
    ("microsoft365:tenant.example", dict(starttls="valid",
                                         auth_mechs=("XOAUTH2",))),
    ("google-workspace", dict(implicit_tls="valid",
                              auth_mechs=("XOAUTH2", "OAUTHBEARER"))),
])
def test_oauth2_profile_against_emulated_provider(smarthosts, authrelay,
                                                  pki, endpoint, secret_file,
                                                  tmp_path, profile,
                                                  emulation):
    sh = smarthosts(token_check=endpoint.check_token, **emulation)
    relay = {"profile": profile, "smarthost": sh.address, "tls": None,
             "tls_verify": None, "ca_file": str(pki.ca_cert),
             "oauth2_ca_file": str(pki.ca_cert), "token_program": TOKEN_BIN}
    if profile.startswith("microsoft365"):
        relay.update(secret_keys(endpoint, secret_file))
    else:
        sa, pub, _ = make_service_account(tmp_path, token_uri=endpoint.url)
        endpoint.add_service_account(SA_EMAIL, pub, [SENDER])
        relay.update(auth_user="@sender",
                     oauth2_service_account_file=str(sa))
    d = authrelay(config={"relay": relay})
    r, _ = deliver_with_retry(d)
    check(r, 250, "2.0.0")


# -- the pre-flight ----------------------------------------------------------

def preflight(path):
    r = run_preflight(path)
    return r, [f"{level} {text}" for level, text in r.lines
               if text.startswith(("oauth2 token", "smarthost"))]


def test_preflight_fetches_a_token_and_authenticates(smarthosts, pki,
                                                     endpoint, secret_file,
                                                     config_for_check):
    """--check with OAuth2: a token from the endpoint, then AUTH XOAUTH2
    at the smarthost with it (and QUIT, no message); a wrong client
    secret is a FAIL that names the endpoint's error, and no AUTH."""
    sh = oauth_smarthost(smarthosts, endpoint)
    keys = secret_keys(endpoint, secret_file)
    path, _ = config_for_check(relay_conf(sh, pki, endpoint, **keys))
    before = endpoint.requests
    r, lines = preflight(path)
    token = [l for l in lines if "oauth2 token for " + MAILBOX in l]
    smart = [l for l in lines if l.split(" ", 1)[1].startswith("smarthost")]
    assert token and token[0].startswith("ok"), r.stdout + r.stderr
    assert smart and smart[0].startswith("ok") and \
        "AUTH as " + MAILBOX in smart[0], r.stdout + r.stderr
    assert endpoint.requests == before + 1
    assert sh.sessions[-1].auth[-1][:3] == ("XOAUTH2", MAILBOX, True)
    assert sh.messages == [], "the pre-flight sent a message"
    assert CLIENT_SECRET not in r.stdout + r.stderr

    secret_file.write_text("not-the-secret\n")
    r, lines = preflight(path)
    token = [l for l in lines if "oauth2 token for " + MAILBOX in l]
    assert token and token[0].startswith("FAIL") and \
        "invalid_client" in token[0], r.stdout + r.stderr
    assert r.returncode == 1
    assert "not-the-secret" not in r.stdout + r.stderr
