"""STARTTLS (RFC 3207) and implicit TLS (RFC 8314) on the listeners of the
config: what is offered and refused before TLS, what is forgotten at the
handshake, and what a second STARTTLS gets."""

import socket
import ssl

import pytest

from conftest import MAX_MESSAGE_SIZE, USERS
from harness import SMTPRaw, check, plain_response

PRE_TLS_EXTENSIONS = ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES",
                      "SMTPUTF8", "STARTTLS")


def test_greeting_is_220_on_both_listeners(authrelay):
    d = authrelay()
    with d.connect() as c:
        assert c.greeting.code == 220
        c.quit()
    with d.connect(implicit_tls=True) as c:
        assert c.greeting.code == 220
        c.quit()


def test_ehlo_before_tls_offers_starttls_and_no_auth(authrelay):
    d = authrelay()
    with d.connect() as c:
        kw = c.ehlo().keywords()
        for ext in PRE_TLS_EXTENSIONS:
            assert ext in kw, f"EHLO before TLS lacks {ext}: {kw}"
        assert kw["SIZE"] == [str(MAX_MESSAGE_SIZE)], \
            f"SIZE: got {kw['SIZE']}, want [{MAX_MESSAGE_SIZE}]"
        assert "AUTH" not in kw, f"AUTH offered before TLS: {kw}"


def test_ehlo_after_starttls_offers_auth_and_no_starttls(authrelay):
    d = authrelay()
    with d.connect() as c:
        c.ehlo()
        c.starttls(d.tls_context)
        kw = c.ehlo().keywords()
        assert "AUTH" in kw, f"no AUTH after TLS: {kw}"
        assert sorted(kw["AUTH"]) == ["LOGIN", "PLAIN"], \
            f"AUTH mechanisms: got {kw['AUTH']}, want PLAIN LOGIN"
        assert "STARTTLS" not in kw, f"STARTTLS offered again: {kw}"
        for ext in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES",
                    "SMTPUTF8"):
            assert ext in kw, f"EHLO after TLS lacks {ext}: {kw}"


@pytest.mark.parametrize("command", [
    "AUTH PLAIN " + plain_response("alice", USERS["alice"]),
    "AUTH LOGIN",
    "MAIL FROM:<alice@example.com>",
    "RCPT TO:<bob@example.net>",
    "DATA",
], ids=["auth-plain", "auth-login", "mail", "rcpt", "data"])
def test_before_tls_is_530(authrelay, command):
    d = authrelay()
    with d.connect() as c:
        c.ehlo()
        c.expect(command, 530, "5.7.0")
        # The session goes on, and TLS still works afterwards.
        c.expect("NOOP", 250, "2.0.0")
        c.starttls(d.tls_context)
        c.ehlo()
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")


def test_pipelined_input_behind_starttls_is_discarded(authrelay):
    """b"STARTTLS\\r\\nEHLO x\\r\\n" in one write: exactly the 220, and after
    the handshake nothing until the client sends a new EHLO (RFC 3207 §4.2,
    the CVE-2011-0411 class of bug)."""
    d = authrelay()
    with d.connect() as c:
        c.ehlo()
        c.send(b"STARTTLS\r\nEHLO x\r\n")
        check(c.read_reply(), 220, None, "STARTTLS")
        assert c.buf == b"", f"more than the 220 before TLS: {c.buf!r}"
        c._wrap(d.tls_context)
        c.assert_silent(1.0)
        kw = c.ehlo("y").keywords()
        assert "AUTH" in kw
        c.expect("NOOP", 250, "2.0.0")


def test_pre_tls_ehlo_is_forgotten(authrelay):
    """After the handshake the session starts over: MAIL without a new
    EHLO is out of sequence."""
    d = authrelay()
    with d.connect() as c:
        c.ehlo()
        c.starttls(d.tls_context)
        c.expect("MAIL FROM:<alice@example.com>", 503, "5.5.1")


def test_auth_after_starttls_without_new_ehlo_is_503(authrelay):
    d = authrelay()
    with d.connect() as c:
        c.ehlo()
        c.starttls(d.tls_context)
        r = c.auth_plain("alice", USERS["alice"])
        check(r, 503, "5.5.1", "AUTH before EHLO after TLS")


def test_second_starttls_is_554(authrelay):
    d = authrelay()
    with d.connect() as c:
        c.ehlo()
        c.starttls(d.tls_context)
        c.ehlo()
        c.expect("STARTTLS", 554, "5.5.1")
        c.expect("NOOP", 250, "2.0.0")


def test_starttls_on_implicit_tls_is_554(authrelay):
    d = authrelay()
    with d.connect(implicit_tls=True) as c:
        c.ehlo()
        c.expect("STARTTLS", 554, "5.5.1")
        c.expect("NOOP", 250, "2.0.0")


def test_starttls_with_argument_is_501(authrelay):
    d = authrelay()
    with d.connect() as c:
        c.ehlo()
        c.expect("STARTTLS now", 501, "5.5.4")
        c.starttls(d.tls_context)   # still possible after the error


def test_implicit_tls_offers_auth_and_accepts_it(authrelay):
    d = authrelay()
    with d.connect(implicit_tls=True) as c:
        kw = c.ehlo().keywords()
        assert "AUTH" in kw and "STARTTLS" not in kw, kw
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
        c.expect("MAIL FROM:<alice@example.com>", 250, "2.1.0")
        c.quit()


def test_mail_before_auth_after_tls_is_530(authrelay):
    d = authrelay()
    with d.session() as c:
        c.expect("MAIL FROM:<alice@example.com>", 530, "5.7.0")
    with d.session(implicit_tls=True) as c:
        c.expect("MAIL FROM:<alice@example.com>", 530, "5.7.0")


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_serves_both_certificates(authrelay, pki, kind):
    """[tls] cert/key given twice (RSA and ECDSA): a TLS 1.2 client that
    only takes one kind gets that certificate."""
    d = authrelay()
    ctx = pki.client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256" if kind == "rsa"
                    else "ECDHE-ECDSA-AES128-GCM-SHA256")
    with SMTPRaw(d.tls_port, tls_context=ctx) as c:
        got = c.sock.getpeercert(binary_form=True)
        assert got == pki.der(kind), f"served the wrong certificate for {kind}"


def test_min_version_is_enforced(authrelay, pki):
    """[tls] min_version = TLSv1.3: a TLS 1.2 client is refused, a TLS 1.3
    client gets through."""
    d = authrelay(config={"tls": {"min_version": "TLSv1.3"}})
    ctx = pki.client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
    try:
        with pytest.raises((ssl.SSLError, OSError)):
            ctx.wrap_socket(s, server_hostname="localhost")
    finally:
        s.close()
    with d.connect(implicit_tls=True) as c:
        assert c.sock.version() == "TLSv1.3"
        c.quit()
