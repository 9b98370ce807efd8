"""The session core (issue 9): a message refused by the header sender
check sends the smarthost no octet of data (the header section is held
until the check passes); only CR LF ends a command line (RFC 5321
§2.3.8); an over-long line in answer to AUTH LOGIN's prompt is 500 5.5.6
(RFC 4954 §4, §6), as long as an initial response of that length is
also a 500."""

import pytest

from harness import check
from smarthost import SENDER, USER, begin, message, relay_config, send_data

pytest_plugins = ["smarthost"]

FOREIGN = (b"From: Bob <bob@example.com>\r\nTo: <bob@example.net>\r\n"
           b"Subject: not yours\r\nMessage-ID: <core@example.com>\r\n")


@pytest.mark.parametrize("body_lines", [1, 20000],
                         ids=["short", "2MB-body"])
def test_header_refusal_sends_no_data_octet(smarthosts, authrelay,
                                            body_lines):
    """sender_check = both: From: is not the user's. The
    client gets 553 5.7.1 at the end of data; the smarthost saw the DATA
    command (the proxy passes its verdict on DATA on at once) but not a
    single octet after its 354, and no end of data."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh, policy={"sender_check": "both"}))
    c = d.authed(USER)
    begin(c)
    body = b"".join(b"body line %06d of a refused message\r\n" % i
                    for i in range(body_lines))
    r = send_data(c, message(body, headers=FOREIGN))
    check(r, 553, "5.7.1", what="end of data")
    assert "bob@example.com" in r.text, r.first_line
    c.expect("NOOP", 250)
    c.quit()
    assert sh.wait_idle(10)
    txns = sh.all_transactions()
    assert len(txns) == 1, f"got transactions {txns!r}, want 1"
    t = txns[0]
    assert t.data_started, f"got {t!r}, want DATA answered by 354"
    assert bytes(t.data_raw) == b"", \
        f"got {len(t.data_raw)} data octets at the smarthost, want 0: " \
        f"{bytes(t.data_raw[:200])!r}"
    assert not t.complete
    for s in sh.sessions:
        assert b"not yours" not in bytes(s.raw), "header octets upstream"
        assert b"refused message" not in bytes(s.raw), "body octets upstream"


def test_header_check_passed_then_message_streams(smarthosts, authrelay):
    """The same path with the user's own From: delivers the message whole,
    our header lines first."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh, policy={"sender_check": "both"}))
    c = d.authed(USER)
    begin(c)
    body = b"".join(b"line %06d\r\n" % i for i in range(5000))
    check(send_data(c, message(body)), 250, "2.0.0", what="end of data")
    c.quit()
    assert sh.wait_idle(10)
    (t,) = sh.messages
    assert t.data.startswith(b"Received: "), t.data[:80]
    assert f"From: Alice <{SENDER}>".encode() in t.data
    assert t.data.endswith(body)


def test_bare_lf_does_not_end_a_command_line(smarthosts, authrelay):
    """RFC 5321 §2.3.8: "MAIL ...\\nRCPT ...\\r\\n" is one line with a bare
    LF in it, refused like a bare CR (500 5.5.2), not two commands."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.send(f"MAIL FROM:<{SENDER}>\nRCPT TO:<bob@example.net>\r\n"
           "NOOP\r\n".encode())
    check(c.read_reply(), 500, "5.5.2", what="line with a bare LF")
    check(c.read_reply(), 250, "2.0.0", what="the NOOP after it")
    # the same with a bare CR, for comparison
    c.send(f"MAIL FROM:<{SENDER}>\rRCPT TO:<bob@example.net>\r\n"
           "NOOP\r\n".encode())
    check(c.read_reply(), 500, "5.5.2", what="line with a bare CR")
    check(c.read_reply(), 250, "2.0.0", what="the NOOP after it")
    # and the session still takes mail
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 250, what="MAIL")
    c.quit()
    assert sh.wait_idle(10)
    mails = [cmd for cmd, _ in sh.commands() if cmd.upper().startswith(b"MAIL")]
    assert len(mails) == 1, f"got MAIL commands upstream {mails!r}, want 1"


def test_bare_lf_alone_never_ends_a_line(authrelay):
    """A client ending commands with LF only gets no reply to them: the
    line goes on until CR LF, and then the whole is one bad line."""
    d = authrelay()
    with d.connect() as c:
        c.send(b"NOOP\nNOOP\nNOOP\r\n")
        check(c.read_reply(), 500, "5.5.2", what="three NOOPs, bare LFs")
        c.expect("NOOP", 250, "2.0.0")


@pytest.mark.parametrize("length", [5000, 20000])
def test_auth_login_overlong_response_is_500_5_5_6(authrelay, length):
    d = authrelay()
    c = d.session()
    check(c.cmd("AUTH LOGIN"), 334, what="AUTH LOGIN")
    check(c.cmd("A" * length), 500, "5.5.6", what="user name line")
    # the exchange is over: a new AUTH works
    r = c.auth_login(USER, "wrong password")
    check(r, 535, "5.7.8", what="AUTH LOGIN afterwards")
    # and at the password prompt
    check(c.cmd("AUTH LOGIN"), 334, what="AUTH LOGIN")
    check(c.cmd("YWxpY2U="), 334, what="user name")
    check(c.cmd("B" * length), 500, "5.5.6", what="password line")
    # the same length as an initial response: a 500 too
    r = c.cmd("AUTH LOGIN " + "A" * length)
    assert r.code == 500, f"initial response: got {r.first_line!r}, want 500"
    c.quit()
