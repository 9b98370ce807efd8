"""The relay's own security (issue 3): STARTTLS or implicit TLS to the
smarthost with certificate verification (a failed verification is a
temporary failure, never a plaintext fallback), AUTH PLAIN or LOGIN with
the proxy's credential, MAIL FROM ... AUTH=<user's address> (xtext) to an
authenticated smarthost and never the client's AUTH=, XCLIENT when
configured and offered.
"""

import pytest

from harness import check
from smarthost import (RESET, SENDER, USER, message, only_message,
                       relay_config, send_data, split_tagged, submit)

pytest_plugins = ["smarthost"]

RELAY_USER = "relay-user"
RELAY_PASSWORD = "relay p4ss+word=ok"


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "relay.secret"
    p.write_text(RELAY_PASSWORD + "\n")
    p.chmod(0o600)
    return p


def tls_config(sh, pki, secret, tls="starttls", verify=True, auth=True,
               **more):
    relay = {"tls": tls, "tls_verify": verify, "ca_file": str(pki.ca_cert)}
    if auth:
        relay.update(auth_user=RELAY_USER, auth_password_file=str(secret))
    relay.update(more)
    return relay_config(sh, **relay)


def assert_no_plaintext_transaction(sh):
    for cmd, tls in sh.commands():
        verb = cmd.split(b" ", 1)[0].split(b":", 1)[0].upper()
        assert tls or verb in (b"EHLO", b"HELO", b"STARTTLS", b"QUIT"), \
            f"{cmd!r} went to the smarthost in plaintext"


# --------------------------------------------------------------------------
# STARTTLS + AUTH

@pytest.mark.parametrize("mechs", [("PLAIN", "LOGIN"), ("LOGIN",),
                                   ("PLAIN",)])
def test_starttls_auth_valid_certificate_delivers(smarthosts, authrelay,
                                                  pki, secret, mechs):
    sh = smarthosts(starttls="valid", auth=(RELAY_USER, RELAY_PASSWORD),
                    auth_mechs=mechs)
    d = authrelay(config=tls_config(sh, pki, secret))
    c = d.authed(USER)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    t = only_message(sh)
    assert split_tagged(t.data)[1] == msg
    s = sh.sessions[0]
    assert s.tls and s.tls_version in ("TLSv1.2", "TLSv1.3"), s
    assert s.verbs()[:3] == [b"EHLO", b"STARTTLS", b"EHLO"], s.verbs()
    want_mech = "PLAIN" if "PLAIN" in mechs else "LOGIN"
    assert s.auth == [(want_mech, RELAY_USER, True, True)], s.auth
    assert t.tls and t.auth_user == RELAY_USER
    assert_no_plaintext_transaction(sh)
    # RFC 4954 §5: who submitted it
    assert t.mail == f"MAIL FROM:<{SENDER}> AUTH={SENDER}".encode(), t.mail


@pytest.mark.parametrize("client_auth", ["AUTH=<>", "AUTH=evil@example.org",
                                         "AUTH=alice+40example.com"])
def test_client_auth_parameter_is_not_passed_on(smarthosts, authrelay, pki,
                                                secret, client_auth):
    sh = smarthosts(starttls="valid", auth=(RELAY_USER, RELAY_PASSWORD))
    d = authrelay(config=tls_config(sh, pki, secret))
    c = d.authed(USER)
    check(submit(c, message(), mail_params=" " + client_auth), 250, "2.0.0",
          what="end of data")
    c.quit()
    mail = only_message(sh).mail
    assert mail == f"MAIL FROM:<{SENDER}> AUTH={SENDER}".encode(), \
        f"client's {client_auth} passed on, or ours missing: {mail!r}"


def test_no_auth_parameter_to_an_unauthenticated_smarthost(smarthosts,
                                                           authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    check(submit(c, message(), mail_params=" AUTH=evil@example.org"), 250,
          "2.0.0", what="end of data")
    c.quit()
    mail = only_message(sh).mail
    assert mail == f"MAIL FROM:<{SENDER}>".encode(), mail


def test_auth_parameter_is_xtext(smarthosts, authrelay, pki, secret):
    """A user whose address has octets outside xtext ("jörg"): AUTH=
    carries them as +XX (RFC 3461 §4)."""
    sh = smarthosts(starttls="valid", auth=(RELAY_USER, RELAY_PASSWORD))
    d = authrelay(config=tls_config(sh, pki, secret))
    c = d.authed("jörg")
    sender = "jörg@example.com"
    check(submit(c, message(sender="joerg@example.com"), sender=sender,
                 mail_params=" SMTPUTF8"), 250, "2.0.0", what="end of data")
    c.quit()
    mail = only_message(sh).mail
    assert mail.endswith(b" AUTH=j+C3+B6rg@example.com"), mail
    assert mail.startswith("MAIL FROM:<jörg@example.com>".encode()), mail


def test_our_credential_refused_is_451(smarthosts, authrelay, pki, secret):
    sh = smarthosts(starttls="valid", auth=(RELAY_USER, "another one"))
    d = authrelay(config=tls_config(sh, pki, secret))
    c = d.authed(USER)
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1",
          what="MAIL when the smarthost refuses our credential")
    c.quit()
    assert b"MAIL" not in sh.command_verbs()


def test_smarthost_without_auth_mechanism_we_speak_is_451(
        smarthosts, authrelay, pki, secret):
    sh = smarthosts(starttls="valid", auth=(RELAY_USER, RELAY_PASSWORD),
                    auth_mechs=("CRAM-MD5",))
    d = authrelay(config=tls_config(sh, pki, secret))
    c = d.authed(USER)
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1", what="MAIL")
    c.quit()
    assert b"MAIL" not in sh.command_verbs()


# --------------------------------------------------------------------------
# Verification failures: 451, never plaintext

@pytest.mark.parametrize("cert", ["wrong-name", "self-signed"])
def test_starttls_certificate_failing_verification_is_451(
        smarthosts, authrelay, pki, secret, cert):
    sh = smarthosts(starttls=cert, auth=(RELAY_USER, RELAY_PASSWORD),
                    auth_requires_tls=False)    # AUTH offered in clear too
    d = authrelay(config=tls_config(sh, pki, secret))
    c = d.authed(USER)
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1",
          what=f"MAIL with a smarthost certificate that fails ({cert})")
    # and the session goes on failing the same way, never downgrading
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1", what="MAIL again")
    c.quit()
    assert sh.wait_idle(5)
    assert sh.connections >= 1
    for s in sh.sessions:
        assert s.verbs() in ([b"EHLO", b"STARTTLS"], []), \
            f"commands after a failed handshake: {s.verbs()}"
        assert s.auth == [], "the credential went out"
        assert s.tls_error is not None, s
    assert b"MAIL" not in sh.command_verbs()
    assert b"AUTH" not in sh.command_verbs()


@pytest.mark.parametrize("cert", ["wrong-name", "self-signed"])
def test_implicit_tls_certificate_failing_verification_is_451(
        smarthosts, authrelay, pki, secret, cert):
    sh = smarthosts(implicit_tls=cert, auth=(RELAY_USER, RELAY_PASSWORD))
    d = authrelay(config=tls_config(sh, pki, secret, tls="tls"))
    c = d.authed(USER)
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1", what="MAIL")
    c.quit()
    assert sh.wait_idle(5)
    assert sh.commands() == [], sh.sessions
    assert all(s.tls_error for s in sh.sessions), sh.sessions


def test_starttls_not_offered_is_451_not_plaintext(smarthosts, authrelay,
                                                   pki, secret):
    sh = smarthosts(starttls=None, auth=(RELAY_USER, RELAY_PASSWORD),
                    auth_requires_tls=False)
    d = authrelay(config=tls_config(sh, pki, secret))
    c = d.authed(USER)
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1", what="MAIL")
    c.quit()
    assert sh.command_verbs() in ([b"EHLO"], [b"EHLO", b"QUIT"]), \
        sh.command_verbs()


@pytest.mark.parametrize("reply", [b"454 4.7.0 TLS not available now\r\n",
                                   RESET])
def test_starttls_refused_or_cut_is_451(smarthosts, authrelay, pki, secret,
                                        reply):
    sh = smarthosts(starttls="valid", auth=(RELAY_USER, RELAY_PASSWORD),
                    auth_requires_tls=False, faults={"STARTTLS": reply})
    d = authrelay(config=tls_config(sh, pki, secret))
    c = d.authed(USER)
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1", what="MAIL")
    c.quit()
    assert_no_plaintext_transaction(sh)
    assert b"MAIL" not in sh.command_verbs()


def test_starttls_without_verification_accepts_any_certificate(
        smarthosts, authrelay, pki, secret):
    """tls_verify = no: encryption without authentication of the
    smarthost (for the record: what "no" means)."""
    sh = smarthosts(starttls="wrong-name", auth=(RELAY_USER, RELAY_PASSWORD))
    d = authrelay(config=tls_config(sh, pki, secret, verify=False))
    c = d.authed(USER)
    check(submit(c, message()), 250, "2.0.0", what="end of data")
    c.quit()
    assert only_message(sh).tls


def test_failover_past_a_smarthost_with_a_bad_certificate(
        smarthosts, authrelay, pki, secret):
    bad = smarthosts(starttls="wrong-name", auth=(RELAY_USER,
                                                  RELAY_PASSWORD))
    good = smarthosts(starttls="valid", auth=(RELAY_USER, RELAY_PASSWORD))
    relay = tls_config(bad, pki, secret)
    relay["relay"]["smarthost"] = [bad.address, good.address]
    d = authrelay(config=relay)
    c = d.authed(USER)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    assert split_tagged(only_message(good).data)[1] == msg
    assert b"MAIL" not in bad.command_verbs()


# --------------------------------------------------------------------------
# Implicit TLS (tls = tls)

def test_implicit_tls_to_the_smarthost(smarthosts, authrelay, pki, secret):
    sh = smarthosts(implicit_tls="valid", auth=(RELAY_USER, RELAY_PASSWORD))
    d = authrelay(config=tls_config(sh, pki, secret, tls="tls"))
    c = d.authed(USER)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    t = only_message(sh)
    assert split_tagged(t.data)[1] == msg
    s = sh.sessions[0]
    assert s.tls and all(tls for _, tls in s.commands), s
    assert b"STARTTLS" not in s.verbs()
    assert s.auth == [("PLAIN", RELAY_USER, True, True)], s.auth
    assert t.mail == f"MAIL FROM:<{SENDER}> AUTH={SENDER}".encode()


def test_implicit_tls_without_auth(smarthosts, authrelay, pki, secret):
    sh = smarthosts(implicit_tls="valid")
    d = authrelay(config=tls_config(sh, pki, secret, tls="tls", auth=False))
    c = d.authed(USER)
    check(submit(c, message()), 250, "2.0.0", what="end of data")
    c.quit()
    t = only_message(sh)
    assert t.tls and t.mail == f"MAIL FROM:<{SENDER}>".encode()


# --------------------------------------------------------------------------
# XCLIENT (Postfix XCLIENT_README)

XCLIENT = b"XCLIENT LOGIN=alice ADDR=127.0.0.1 NAME=[UNAVAILABLE]"


def test_xclient_sent_before_mail(smarthosts, authrelay):
    sh = smarthosts(xclient=True)
    d = authrelay(config=relay_config(sh, xclient=True))
    c = d.authed(USER)
    check(submit(c, message()), 250, "2.0.0", what="end of data")
    c.quit()
    s = sh.sessions[0]
    assert s.xclient == [XCLIENT], s.xclient
    verbs = s.verbs()
    assert verbs[:4] == [b"EHLO", b"XCLIENT", b"EHLO", b"MAIL"], verbs


def test_xclient_with_starttls_and_auth(smarthosts, authrelay, pki, secret):
    sh = smarthosts(xclient=True, starttls="valid",
                    auth=(RELAY_USER, RELAY_PASSWORD))
    d = authrelay(config=tls_config(sh, pki, secret, xclient=True))
    c = d.authed(USER)
    check(submit(c, message()), 250, "2.0.0", what="end of data")
    c.quit()
    s = sh.sessions[0]
    assert s.xclient == [XCLIENT], s.xclient
    verbs = s.verbs()
    assert verbs.index(b"XCLIENT") < verbs.index(b"MAIL"), verbs
    # Our own AUTH once, before XCLIENT; never again after it (the
    # smarthost takes LOGIN= as the session's identity).
    assert verbs.count(b"AUTH") == 1, verbs
    assert verbs.index(b"AUTH") < verbs.index(b"XCLIENT"), verbs
    assert_no_plaintext_transaction(sh)


def test_no_xclient_unless_configured(smarthosts, authrelay):
    sh = smarthosts(xclient=True)
    d = authrelay(config=relay_config(sh))      # xclient = no (default)
    c = d.authed(USER)
    check(submit(c, message()), 250, "2.0.0", what="end of data")
    c.quit()
    assert b"XCLIENT" not in sh.command_verbs()


def test_no_xclient_unless_offered(smarthosts, authrelay):
    sh = smarthosts(xclient=False)
    d = authrelay(config=relay_config(sh, xclient=True))
    c = d.authed(USER)
    check(submit(c, message()), 250, "2.0.0", what="end of data")
    c.quit()
    assert b"XCLIENT" not in sh.command_verbs()


def test_xclient_refused_goes_on_without(smarthosts, authrelay):
    sh = smarthosts(xclient=True,
                    faults={"XCLIENT": b"550 5.7.0 not authorized\r\n"})
    d = authrelay(config=relay_config(sh, xclient=True))
    c = d.authed(USER)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    assert split_tagged(only_message(sh).data)[1] == msg


# --------------------------------------------------------------------------
# Envelope parameters: rebuilt, only known ones

def test_dsn_parameters_only_where_offered(smarthosts, authrelay):
    with_dsn = smarthosts(dsn=True)
    without = smarthosts(dsn=False)
    for sh in (with_dsn, without):
        d = authrelay(config=relay_config(sh))
        c = d.authed(USER)
        c.expect(f"MAIL FROM:<{SENDER}> RET=HDRS ENVID=QQ314159", 250)
        c.expect("RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE "
                 "ORCPT=rfc822;bob@example.net", 250)
        c.expect("DATA", 354)
        check(send_data(c, message()), 250, "2.0.0", what="end of data")
        c.quit()
    t = only_message(with_dsn)
    assert t.mail == f"MAIL FROM:<{SENDER}> RET=HDRS ENVID=QQ314159"\
        .encode(), t.mail
    assert t.rcpt_lines == [b"RCPT TO:<bob@example.net> NOTIFY=SUCCESS,"
                            b"FAILURE ORCPT=rfc822;bob@example.net"], \
        t.rcpt_lines
    t = only_message(without)
    assert t.mail == f"MAIL FROM:<{SENDER}>".encode(), t.mail
    assert t.rcpt_lines == [b"RCPT TO:<bob@example.net>"], t.rcpt_lines


def test_size_body_smtputf8_passed_on(smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    check(submit(c, message(), mail_params=" SIZE=1234 BODY=8BITMIME "
                                           "SMTPUTF8"),
          250, "2.0.0", what="end of data")
    c.quit()
    assert only_message(sh).mail == \
        f"MAIL FROM:<{SENDER}> SIZE=1234 BODY=8BITMIME SMTPUTF8".encode()


def test_unknown_mail_parameter_never_reaches_the_smarthost(smarthosts,
                                                            authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    r = c.cmd(f"MAIL FROM:<{SENDER}> XEVIL=1")
    assert r.code // 100 == 5, r
    c.quit()
    assert b"XEVIL" not in b"".join(cmd for cmd, _ in sh.commands())
