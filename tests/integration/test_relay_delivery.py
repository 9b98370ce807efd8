"""Relay to the smarthost (issue 3): what reaches the smarthost is the
client's message, byte for byte and dot-stuffed as it was, with exactly
our Received and X-Authenticated-User headers on top and exactly one end
of data; replies line up with pipelined commands; the smarthost's own
replies reach the client.

Each test runs the real daemon against TestSmarthost (smarthost.py),
which records the raw octets it receives.
"""

import time

import pytest

from harness import check
from smarthost import (END_OF_DATA, SENDER, USER, assert_nothing_delivered,
                       bare_newlines, begin, message,
                       only_message, relay_config, send_data, split_tagged,
                       submit)

pytest_plugins = ["smarthost"]

# A message that exercises the data path: stuffed dots, a line that is a
# lone "." (stuffed), 8-bit octets, trailing white space, tabs,
# a 998-octet line, an empty line in the body, a folded header, a body
# line that looks like our identity header, and "From " at a line start.
BODY = (b"Hello Bob,\r\n"
        b"..leading dot (the client stuffed it)\r\n"
        b"..\r\n"
        b"...two dots\r\n"
        b"trailing white space \t \r\n"
        b"\tstarts with a tab\r\n"
        b"8bit: Gr\xc3\xbc\xc3\x9fe \xe2\x9c\x93\r\n"
        b"control octets: a\x01\x7fb\r\n"
        b"\r\n"
        b"From the start of a line\r\n"
        b"X-Authenticated-User: mallory (a body line, kept)\r\n" +
        b"x" * 998 + b"\r\n"
        b"-- \r\n"
        b"last line\r\n")
HEADERS = (b"From: Alice <alice@example.com>\r\n"
           b"To: Bob <bob@example.net>\r\n"
           b"Subject: a subject that is\r\n"
           b"  folded over two lines\r\n"
           b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
           b"Message-ID: <byte-exact@example.com>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n")
MESSAGE = HEADERS + b"\r\n" + BODY


def test_delivered_byte_for_byte_with_exactly_our_two_headers(smarthosts,
                                                              authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.expect(f"MAIL FROM:<{SENDER}> BODY=8BITMIME", 250, "2.1.0")
    c.expect("RCPT TO:<bob@example.net>", 250, "2.1.5")
    c.expect("DATA", 354)
    r = send_data(c, MESSAGE)
    check(r, 250, "2.0.0", what="end of data")
    assert "queued as TEST0001" in r.text, \
        f"want the smarthost's own reply text, got {r!r}"
    c.quit()
    assert sh.wait_idle(10), "the relay connection was not closed"

    t = only_message(sh)
    m, rest = split_tagged(t.data)
    assert rest == MESSAGE, \
        "the smarthost got something else than the client's message:\n" \
        f"got  {rest!r}\nwant {MESSAGE!r}"
    assert m.group("helo") == b"client.example.org"
    assert m.group("ip") == b"127.0.0.1"
    assert m.group("by") == b"relay.test.example"
    assert m.group("version").startswith(b"TLSv1."), m.group(0)
    assert m.group("for") == b"bob@example.net", m.group(0)
    # the envelope, rebuilt from parsed fields
    assert t.mail == f"MAIL FROM:<{SENDER}> BODY=8BITMIME".encode(), t.mail
    assert t.rcpt_lines == [b"RCPT TO:<bob@example.net>"], t.rcpt_lines
    # CRLF only, and exactly one end of data in the whole transcript
    assert bare_newlines(t.data) == [], bare_newlines(t.data)
    s = sh.sessions[0]
    assert bytes(s.raw).count(END_OF_DATA) == 1, bytes(s.raw)[-200:]
    assert s.verbs() == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"QUIT"], \
        s.verbs()


def test_two_messages_on_one_session_reuse_the_relay_connection(
        smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    one = message(b"first\r\n", subject="one")
    two = message(b"second\r\n", subject="two")
    check(submit(c, one), 250, "2.0.0", what="first message")
    check(submit(c, two, rcpts=("carol@example.net", "dave@example.net")),
          250, "2.0.0", what="second message")
    c.quit()
    msgs = sh.messages
    assert len(msgs) == 2, msgs
    assert split_tagged(msgs[0].data)[1] == one
    m, rest = split_tagged(msgs[1].data)
    assert rest == two
    # RFC 5321 §4.4: "for" only with a single recipient
    assert m.group("for") is None, m.group(0)
    assert sh.connections == 1, f"want one relay connection for the " \
        f"session, got {sh.connections}"
    assert msgs[1].rcpt_lines == [b"RCPT TO:<carol@example.net>",
                                  b"RCPT TO:<dave@example.net>"]


def test_empty_identity_header_setting_adds_only_received(smarthosts,
                                                          authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh, identity_header=""))
    c = d.authed(USER)
    msg = message(b"X-Authenticated-User: in the body\r\n")
    check(submit(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    _m, rest = split_tagged(only_message(sh).data, identity_header="")
    assert rest == msg


def test_empty_message_gets_only_our_headers(smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    check(submit(c, b""), 250, "2.0.0", what="empty message")
    c.quit()
    _m, rest = split_tagged(only_message(sh).data)
    assert rest == b"", rest


def test_implicit_tls_client_session_is_relayed(smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER, implicit_tls=True)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    assert split_tagged(only_message(sh).data)[1] == msg


# --------------------------------------------------------------------------
# The smarthost's replies reach the client, code and enhanced code

@pytest.mark.parametrize("reject", [
    "550 5.1.1 <nobody@example.net>: Recipient address rejected: "
    "no such user",
    "450 4.2.1 <nobody@example.net>: mailbox busy, try later",
    "553 5.7.1 relaying denied",
])
def test_rcpt_rejected_by_smarthost_reaches_the_client(smarthosts,
                                                       authrelay, reject):
    sh = smarthosts(reject_rcpt={"nobody@example.net": reject})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    code, enhanced, text = reject.split(" ", 2)
    r = c.expect("RCPT TO:<nobody@example.net>", int(code), enhanced)
    assert text.split(":")[-1].strip() in r.text, \
        f"want the smarthost's text, got {r!r}"
    # the transaction goes on with the good recipient; only it is
    # delivered
    c.expect("RCPT TO:<bob@example.net>", 250, "2.1.5")
    c.expect("DATA", 354)
    check(send_data(c, message()), 250, "2.0.0", what="end of data")
    c.quit()
    t = only_message(sh)
    assert t.rcpts == [b"RCPT TO:<bob@example.net>"], t.rcpts


def test_all_rcpts_rejected_then_data_is_refused(smarthosts, authrelay):
    sh = smarthosts(reject_rcpt={
        "nobody@example.net": "550 5.1.1 no such user"})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    c.expect("RCPT TO:<nobody@example.net>", 550, "5.1.1")
    r = c.cmd("DATA")
    assert r.code in (503, 554), f"DATA without a recipient: {r!r}"
    c.expect("RSET", 250)
    c.quit()
    assert b"DATA" not in sh.command_verbs()
    assert sh.messages == []


@pytest.mark.parametrize("stage,fault,code,enhanced", [
    ("MAIL", b"553 5.7.1 sender rejected\r\n", 553, "5.7.1"),
    ("MAIL", b"451 4.3.0 try again\r\n", 451, "4.3.0"),
    ("DATA", b"554 5.5.1 no DATA for you\r\n", 554, "5.5.1"),
    ("DOT", b"554 5.7.1 message rejected as spam\r\n", 554, "5.7.1"),
    ("DOT", b"452 4.3.1 insufficient storage\r\n", 452, "4.3.1"),
])
def test_smarthost_refusal_reaches_the_client(smarthosts, authrelay, stage,
                                              fault, code, enhanced):
    """A message is never acknowledged that the smarthost did not
    accept: its refusal is what the client gets."""
    sh = smarthosts(faults={stage: fault})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    r = c.cmd(f"MAIL FROM:<{SENDER}>")
    if stage == "MAIL":
        check(r, code, enhanced, what="MAIL")
    else:
        check(r, 250, what="MAIL")
        c.expect("RCPT TO:<bob@example.net>", 250)
        r = c.cmd("DATA")
        if stage == "DATA":
            check(r, code, enhanced, what="DATA")
        else:
            check(r, 354, what="DATA")
            check(send_data(c, message()), code, enhanced,
                  what="end of data")
    # the session goes on: the next transaction is delivered
    sh.faults.clear()
    if stage in ("DATA",):
        c.expect("RSET", 250)
    check(submit(c, message(b"second try\r\n")), 250, "2.0.0",
          what="next transaction")
    c.quit()
    assert split_tagged(sh.messages[-1].data)[1] == \
        message(b"second try\r\n")


def test_reply_without_enhanced_code_gets_one(smarthosts, authrelay):
    """Every error reply carries an enhanced status code (SPEC), even when
    the smarthost's did not."""
    sh = smarthosts(reject_rcpt={"nobody@example.net": "550 no such user"})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    r = c.expect("RCPT TO:<nobody@example.net>", 550)
    assert r.enhanced and r.enhanced.startswith("5."), r
    c.quit()


def test_slow_smarthost_replies_still_line_up(smarthosts, authrelay):
    sh = smarthosts(delays={"MAIL": 0.5, "RCPT": 0.3, "DOT": 0.5})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    assert split_tagged(only_message(sh).data)[1] == msg


# --------------------------------------------------------------------------
# Pipelining (RFC 2920)

def test_pipelined_mail_rcpt_rcpt_data_replies_in_order(smarthosts,
                                                        authrelay):
    # the first RCPT is slow, the second fast: the replies still come in
    # command order
    sh = smarthosts(
        reject_rcpt={"nobody@example.net": "550 5.1.1 no such user"},
        faults={"RCPT": lambda s, line: (time.sleep(0.4), None)[1]
                if b"bob@" in line else None})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.send(f"MAIL FROM:<{SENDER}>\r\n"
           "RCPT TO:<bob@example.net>\r\n"
           "RCPT TO:<nobody@example.net>\r\n"
           "DATA\r\n")
    check(c.read_reply(), 250, "2.1.0", what="MAIL")
    check(c.read_reply(), 250, "2.1.5", what="RCPT bob")
    check(c.read_reply(), 550, "5.1.1", what="RCPT nobody")
    check(c.read_reply(), 354, what="DATA")
    msg = message()
    check(send_data(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    t = only_message(sh)
    assert t.rcpt_lines == [b"RCPT TO:<bob@example.net>",
                            b"RCPT TO:<nobody@example.net>"]
    assert split_tagged(t.data)[1] == msg


def test_pipelined_whole_transaction_in_one_write(smarthosts, authrelay):
    """MAIL, RCPT, DATA in one write, then the message and QUIT in the
    next: every reply once, in order."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<bob@example.net>\r\n"
           "RCPT TO:<carol@example.net>\r\nDATA\r\n")
    for what, code in (("MAIL", 250), ("RCPT", 250), ("RCPT", 250),
                       ("DATA", 354)):
        check(c.read_reply(), code, what=what)
    msg = message()
    c.send(msg + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    check(c.read_reply(), 250, "2.0.0", what="end of data")
    check(c.read_reply(), 250, what="RSET")
    check(c.read_reply(), 250, what="NOOP")
    check(c.read_reply(), 221, what="QUIT")
    c.assert_closed()
    assert split_tagged(only_message(sh).data)[1] == msg


def test_message_with_a_nul_is_refused_and_nothing_delivered(smarthosts,
                                                              authrelay):
    """RFC 5321 §4.5.2: NUL is not text, and a smarthost that drops NULs
    would take CRLF NUL . CRLF for an end of data: refused, 550 5.6.0."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    begin(c)
    r = send_data(c, HEADERS + b"\r\nbody a\x00b\r\n")
    check(r, 550, "5.6.0", what="end of data")
    c.expect("NOOP", 250)
    c.quit()
    assert_nothing_delivered(sh, "NUL")

