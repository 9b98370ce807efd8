"""Socket activation with systemd-socket-activate: two named sockets,
"submission" (STARTTLS) and "submissions" (implicit TLS), in either order;
the daemon binds none of its config's listen entries."""

import smtplib

import pytest

from conftest import USERS
from harness import SMTPRaw, assert_port_closed, check, plain_response

ORDERS = [("submission", "submissions"), ("submissions", "submission")]


@pytest.mark.parametrize("names", ORDERS, ids=["587-first", "465-first"])
def test_named_sockets_in_either_order(authrelay, names):
    d = authrelay(socket_activation=names)
    ports = d.activation_ports

    # The connection that made systemd-socket-activate start the daemon
    # waited in the backlog; it is served like any other.
    first = SMTPRaw(None, sock=d.trigger, tls_context=(
        d.tls_context if names[0] == "submissions" else None))
    d.trigger = None
    first.quit()

    # submission: plain text, STARTTLS offered, no AUTH before TLS.
    with SMTPRaw(ports["submission"]) as c:
        kw = c.ehlo().keywords()
        assert "STARTTLS" in kw and "AUTH" not in kw, kw
        c.expect("AUTH PLAIN " + plain_response("alice", USERS["alice"]),
                 530, "5.7.0")
        c.starttls(d.tls_context)
        kw = c.ehlo().keywords()
        assert "AUTH" in kw and "STARTTLS" not in kw, kw
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")

    # submissions: TLS from the first octet.
    with SMTPRaw(ports["submissions"], tls_context=d.tls_context) as c:
        kw = c.ehlo().keywords()
        assert "AUTH" in kw and "STARTTLS" not in kw, kw
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")

    # The config's own listen entries stay unbound.
    assert_port_closed(d.starttls_port, "(config listen, starttls)")
    assert_port_closed(d.tls_port, "(config listen, tls)")


def test_outlook_and_apple_mail_sessions_when_socket_activated(authrelay,
                                                                pki):
    """The "done when" of issue 2: socket-activated on two named sockets,
    an Outlook-style session (EHLO, STARTTLS, EHLO, AUTH LOGIN) and an
    Apple-Mail-style one (AUTH PLAIN with initial response) through PAM."""
    d = authrelay(socket_activation=("submission", "submissions"))
    d.trigger.close()
    d.trigger = None
    ports = d.activation_ports

    with SMTPRaw(ports["submission"]) as c:
        c.ehlo("DESKTOP-7F3K2LQ")
        c.starttls(d.tls_context)
        c.ehlo("DESKTOP-7F3K2LQ")
        check(c.auth_login("alice", USERS["alice"]), 235, "2.7.0")
        c.expect("MAIL FROM:<alice@example.com>", 250, "2.1.0")
        c.quit()

    for port, implicit in ((ports["submission"], False),
                           (ports["submissions"], True)):
        if implicit:
            s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=10,
                                 context=pki.client_context())
        else:
            s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        try:
            s.ehlo("MacBook-Pro")
            if not implicit:
                s.starttls(context=pki.client_context())
                s.ehlo("MacBook-Pro")
            code, msg = s.docmd("AUTH", "PLAIN " + plain_response(
                "alice", USERS["alice"]))
            assert code == 235 and msg.startswith(b"2.7.0"), (code, msg)
            code, msg = s.docmd("AUTH", "PLAIN " + plain_response(
                "alice", USERS["alice"]))
            assert code == 503, (code, msg)
            s.quit()
        finally:
            s.close()
