"""[relay] profile = NAME[:ARG] (common/relay_profile.c): `authrelay -t`
shows what each profile expanded to and where each value came from; a
key given in the config wins over the profile; malformed profiles are
config errors with their line. End to end, a profile's TLS mode and
mechanism reach a local smarthost emulating that provider (password
mechanisms; the OAuth2 ones are in test_relay_oauth2_e2e.py), and a
wrong TLS mode or mechanism fails with a clear reason.
"""

import pytest

from conftest import run_check
from harness import check
from smarthost import (USER, message, only_message, split_tagged, submit,
                       assert_nothing_delivered)

pytest_plugins = ["smarthost"]

PASSWORD = "provider-key.0123456789"


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "provider.secret"
    p.write_text(PASSWORD + "\n")
    p.chmod(0o600)
    return p


def expansion(stdout):
    """-t output -> {key: (value, source)}; smarthost may repeat."""
    got = {}
    for line in stdout.splitlines():
        assert line.startswith("[relay] "), line
        key, _, rest = line[len("[relay] "):].partition(" = ")
        value, _, source = rest.partition("  (")
        got[key] = (value, source.rstrip(")") if source else None)
    return got


# (profile, extra [relay] keys, want smarthost, tls, auth_mechanism,
#  auth_user or None)
PROFILES = [
    ("microsoft365:contoso.onmicrosoft.com",
     {"oauth2_client_id": "app", "auth_user": "scanner@contoso.com"},
     "smtp.office365.com:587", "starttls", "xoauth2", None),
    ("google-workspace", {"auth_user": "@sender"},
     "smtp.gmail.com:465", "tls", "xoauth2", None),
    ("google-smtp-relay", {}, "smtp-relay.gmail.com:587", "starttls",
     "plain or login, as offered", None),
    ("amazon-ses:eu-west-1", {"auth_user": "AKIAEXAMPLE"},
     "email-smtp.eu-west-1.amazonaws.com:587", "starttls",
     "plain or login, as offered", None),
    ("sendgrid", {}, "smtp.sendgrid.net:587", "starttls",
     "plain or login, as offered", "apikey"),
    ("mailgun", {"auth_user": "postmaster@mg.example.com"},
     "smtp.mailgun.org:587", "starttls", "plain or login, as offered", None),
    ("postmark", {"auth_user": "server-token"}, "smtp.postmarkapp.com:587",
     "starttls", "plain or login, as offered", None),
    ("mailjet", {"auth_user": "apikey-public"}, "in-v3.mailjet.com:587",
     "starttls", "plain or login, as offered", None),
    ("mandrill", {"auth_user": "any"}, "smtp.mandrillapp.com:587",
     "starttls", "plain or login, as offered", None),
    ("smtp.com:acme", {"auth_user": "sender"}, "acme.smtp.com:2525",
     "starttls",
     "plain or login, as offered", None),
    ("zoho", {"auth_user": "a@example.com"}, "smtppro.zoho.com:465", "tls",
     "plain or login, as offered", None),
    ("fastmail", {"auth_user": "a@fastmail.com"}, "smtp.fastmail.com:465",
     "tls", "plain", None),
    ("rackspace", {"auth_user": "a@example.com"},
     "secure.emailsrvr.com:465", "tls", "plain or login, as offered", None),
    ("protonmail-bridge", {"auth_user": "a@proton.me", "ca_file": "CA"},
     "127.0.0.1:1025", "starttls", "plain or login, as offered", None),
]


@pytest.mark.parametrize("profile, extra, want_host, tls, mech, user",
                         PROFILES, ids=[p[0] for p in PROFILES])
def test_check_shows_profile_expansion(config_for_check, pki, secret,
                                       tmp_path, profile, extra, want_host,
                                       tls, mech, user):
    relay = {"smarthost": None, "tls": None, "tls_verify": None,
             "profile": profile}
    relay.update(extra)
    if relay.get("ca_file") == "CA":
        relay["ca_file"] = str(pki.ca_cert)
    oauth = mech in ("xoauth2", "oauthbearer")
    if oauth and profile.startswith("microsoft365"):
        relay["oauth2_client_secret_file"] = str(secret)
    elif oauth:
        sa = tmp_path / "sa.json"
        sa.write_text("{}")
        relay["oauth2_service_account_file"] = str(sa)
    elif "auth_user" in relay or user is not None:
        relay["auth_password_file"] = str(secret)
    path, _ = config_for_check({"relay": relay})
    r = run_check(path)
    assert r.returncode == 0, r.stderr
    got = expansion(r.stdout)
    src = f"profile {profile}"
    assert got["profile"] == (profile, None)
    assert got["smarthost"] == (want_host, src)
    assert got["tls"] == (tls, src)
    want_mech_src = "default" if mech.startswith("plain or") else src
    if mech == "plain" or oauth:
        want_mech_src = src
    assert got["auth_mechanism"] == (mech, want_mech_src)
    if user is not None:
        assert got["auth_user"] == (user, src)
    if profile.startswith("microsoft365"):
        assert got["oauth2_grant"] == ("client_credentials", src)
        assert got["oauth2_token_url"] == (
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/"
            "oauth2/v2.0/token", src)
        assert got["oauth2_scope"] == (
            "https://outlook.office365.com/.default", src)
    if profile == "google-workspace":
        assert got["auth_user"] == ("@sender", "set")
        assert got["oauth2_grant"] == ("jwt_bearer", src)
        assert got["oauth2_scope"] == ("https://mail.google.com/", src)


def test_explicit_keys_override_the_profile(config_for_check, secret):
    path, _ = config_for_check({"relay": {
        "profile": "sendgrid", "smarthost": "127.0.0.1:2525",
        "tls": "tls", "auth_user": "someone",
        "auth_mechanism": "login", "auth_password_file": str(secret)}})
    r = run_check(path)
    assert r.returncode == 0, r.stderr
    got = expansion(r.stdout)
    assert got["smarthost"] == ("127.0.0.1:2525", "set")
    assert got["tls"] == ("tls", "set")
    assert got["auth_user"] == ("someone", "set")
    assert got["auth_mechanism"] == ("login", "set")


def test_no_profile_prints_nothing(config_for_check):
    path, _ = config_for_check()
    r = run_check(path)
    assert (r.returncode, r.stdout) == (0, "")


# (relay keys, want message after FILE:LINE: )
ERRORS = [
    ({"profile": "amazon-ses"},
     '[relay] profile: "amazon-ses": this profile needs an argument'),
    ({"profile": "nosuchprovider"},
     '[relay] profile: "nosuchprovider": unknown profile'),
    ({"profile": "sendgrid:eu"},
     '[relay] profile: "sendgrid:eu": this profile takes no argument'),
    ({"profile": "amazon-ses:eu west"},
     '[relay] profile: "amazon-ses:eu west": malformed argument (letters, '
     "digits, '-' and '.')"),
    ({"profile": "protonmail-bridge", "auth_user": "a@proton.me",
      "auth_password_file": "SECRET"},
     "[relay] profile = protonmail-bridge: set [relay] ca_file to its "
     "exported certificate (or tls_verify = no)"),
    ({"profile": "microsoft365", "auth_user": "a@example.com",
      "oauth2_client_id": "x", "oauth2_client_secret_file": "SECRET"},
     "[relay] oauth2_grant = client_credentials needs oauth2_token_url "
     "(or profile = microsoft365:TENANT)"),
    ({"auth_mechanism": "xoauth2", "auth_user": "a@example.com"},
     "[relay] auth_mechanism = xoauth2 needs oauth2_grant"),
    ({"auth_mechanism": "xoauth2", "auth_user": "a@example.com",
      "oauth2_grant": "client_credentials", "oauth2_client_id": "x",
      "oauth2_token_url": "https://login.example/token"},
     "[relay] oauth2_grant = client_credentials needs "
     "oauth2_client_secret_file, or oauth2_client_certificate and "
     "oauth2_client_key"),
    ({"auth_mechanism": "xoauth2", "auth_user": "a@example.com",
      "oauth2_grant": "client_credentials", "oauth2_client_id": "x",
      "oauth2_token_url": "http://login.example/token",
      "oauth2_client_secret_file": "SECRET"},
     '[relay] oauth2_token_url: "http://login.example/token": must be an '
     'https:// URL'),
    ({"auth_user": "@sender", "auth_password_file": "SECRET"},
     "[relay] auth_user = @sender needs auth_mechanism = xoauth2 or "
     "oauthbearer (a password belongs to one account)"),
    ({"oauth2_client_id": "x"},
     "[relay] oauth2_client_id needs auth_mechanism = xoauth2 or "
     "oauthbearer"),
]


@pytest.mark.parametrize("relay, want", ERRORS,
                         ids=[str(i) for i in range(len(ERRORS))])
def test_profile_and_oauth2_errors(config_for_check, secret, relay, want):
    relay = {k: (str(secret) if v == "SECRET" else v)
             for k, v in relay.items()}
    if "profile" in relay:
        relay.update(smarthost=None, tls=None, tls_verify=None)
    path, _ = config_for_check({"relay": relay})
    r = run_check(path)
    assert r.returncode == 1
    msgs = [line.split(": ", 1)[1] for line in r.stderr.splitlines()
            if line.startswith(str(path) + ":")]
    assert want in msgs, f"got {msgs}, want {want!r}"


# --------------------------------------------------------------------------
# End to end against an emulated provider (password mechanisms)

# (profile, emulation: TLS and mechanisms as the provider documents them,
#  the user name the provider expects)
EMULATED = [
    ("sendgrid", dict(starttls="valid", auth_mechs=("PLAIN", "LOGIN")),
     "apikey"),
    ("amazon-ses:us-east-1", dict(starttls="valid",
                                  auth_mechs=("PLAIN", "LOGIN")),
     "AKIAEXAMPLE"),
    ("fastmail", dict(implicit_tls="valid", auth_mechs=("PLAIN",)),
     "alice@fastmail.com"),
    ("postmark", dict(starttls="valid", auth_mechs=("PLAIN", "LOGIN",
                                                    "CRAM-MD5")),
     "server-token"),
]


def provider_relay(sh, pki, secret, profile, user):
    relay = {"profile": profile, "smarthost": sh.address, "tls": None,
             "tls_verify": None, "ca_file": str(pki.ca_cert),
             "auth_password_file": str(secret)}
    if user != "apikey":
        relay["auth_user"] = user
    return {"relay": relay}


@pytest.mark.parametrize("profile, emulation, user", EMULATED,
                         ids=[e[0] for e in EMULATED])
def test_profile_relays_to_emulated_provider(smarthosts, authrelay, pki,
                                             secret, profile, emulation,
                                             user):
    sh = smarthosts(auth=(user, PASSWORD), **emulation)
    d = authrelay(config=provider_relay(sh, pki, secret, profile, user))
    c = d.authed(USER)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    t = only_message(sh)
    assert split_tagged(t.data)[1] == msg
    s = sh.sessions[0]
    assert s.tls, s
    assert [(a[1], a[2]) for a in s.auth] == [(user, True)], s.auth
    if emulation.get("auth_mechs") == ("PLAIN",):
        assert s.auth[0][0] == "PLAIN"


# (profile, emulation that does not match it, words in the log)
MISMATCH = [
    ("fastmail", dict(starttls="valid", auth_mechs=("PLAIN",)),
     "alice@fastmail.com", ["TLS handshake failed"]),
    ("sendgrid", dict(implicit_tls="valid", auth_mechs=("PLAIN",)),
     "apikey", ["smarthost"]),
    ("fastmail", dict(implicit_tls="valid", auth_mechs=("LOGIN",)),
     "alice@fastmail.com", ["AUTH PLAIN not offered"]),
]


@pytest.mark.parametrize("profile, emulation, user, words", MISMATCH,
                         ids=["implicit-vs-starttls", "starttls-vs-implicit",
                              "mechanism"])
def test_profile_mismatch_is_a_clear_temporary_error(smarthosts, authrelay,
                                                     pki, secret, profile,
                                                     emulation, user, words):
    sh = smarthosts(auth=(user, PASSWORD), timeout=5, **emulation)
    conf = provider_relay(sh, pki, secret, profile, user)
    conf["relay"]["connect_timeout"] = "3s"
    conf["server"] = {"command_timeout": "3s"}
    d = authrelay(config=conf)
    c = d.authed(USER)
    r = c.cmd("MAIL FROM:<alice@example.com>", timeout=30)
    check(r, 451, "4.4.1", what="MAIL with a mismatched provider")
    c.quit()
    assert_nothing_delivered(sh)
    log = d.log()
    for w in words:
        assert w in log, f"want {w!r} in the log:\n{log}"
