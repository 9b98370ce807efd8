"""Clean data (issue 3): only CR LF "." CR LF ends a message. SMTP
smuggling sequences followed by a second transaction never produce a
second message upstream: with bare_newline = reject the message is
refused (550 5.5.2) and nothing reaches the smarthost's store; with
normalize exactly one message goes upstream, with CR LF line ends only,
and no second MAIL command ever reaches the smarthost.

Each message is: headers, a body line, the sequence, then
"MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\nsmuggled\r\n", and then the
real end ".\r\n" (so the smuggled part's own "." line is the message's
one and only CR LF "." CR LF).
"""

import re

import pytest

from harness import check
from smarthost import (SENDER, USER, assert_nothing_delivered, bare_newlines,
                       begin, message, only_message, relay_config, send_data,
                       split_tagged)

pytest_plugins = ["smarthost"]

SMUGGLED = b"MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\nsmuggled\r\n"

SEQUENCES = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "CR.LF": b"\r.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
    "LF.CR": b"\n.\r",
    "CR.CRLF": b"\r.\r\n",
    "CRLF-NUL.CRLF": b"\r\n\x00.\r\n",
}
# A NUL in front of the dot: no bare CR or LF, but a smarthost that drops
# NULs would see an end of data there, so the proxy refuses any message
# with a NUL (550 5.6.0) in both modes and sends nothing of it.
NUL = {"CRLF-NUL.CRLF"}


def smuggling_message(seq):
    return message(b"first body line" + seq + SMUGGLED)


def normalize(msg):
    """What the proxy must send for msg with bare_newline = normalize:
    each bare CR or LF becomes CR LF, the client's dot-stuffing is undone
    (a lone "." after a bare line end is data, not an end), and lines
    that start with "." are stuffed again."""
    lines = re.split(rb"\r\n|\r|\n", msg)
    assert lines[-1] == b"", "message must end with a line end"
    out = []
    for line in lines[:-1]:
        if line.startswith(b".") and line != b".":
            line = line[1:]
        if line.startswith(b"."):
            line = b"." + line
        out.append(line + b"\r\n")
    return b"".join(out)


def mail_commands(sh):
    return [c for c, _ in sh.commands() if c.upper().startswith(b"MAIL")]


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_smuggling_with_bare_newline_reject(smarthosts, authrelay, name):
    seq = SEQUENCES[name]
    sh = smarthosts()
    d = authrelay(config=relay_config(sh,
                                      policy={"bare_newline": "reject"}))
    c = d.authed(USER)
    begin(c)
    msg = smuggling_message(seq)
    r = send_data(c, msg)
    if name in NUL:
        check(r, 550, "5.6.0", what=f"{name}: end of data")
    else:
        check(r, 550, "5.5.2", what=f"{name}: end of data")
    assert_nothing_delivered(sh, name)
    # in sync: the smuggled commands were data, not commands
    c.expect("NOOP", 250)
    c.quit()
    assert sh.wait_idle(5)
    assert len(mail_commands(sh)) == 1, \
        f"{name}: MAIL commands at the smarthost: {mail_commands(sh)!r}"
    for s in sh.sessions:
        assert b"x@y" not in b"".join(c for c, _ in s.commands), s


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_smuggling_with_bare_newline_normalize(smarthosts, authrelay, name):
    seq = SEQUENCES[name]
    sh = smarthosts()
    d = authrelay(config=relay_config(sh,
                                      policy={"bare_newline": "normalize"}))
    c = d.authed(USER)
    begin(c)
    msg = smuggling_message(seq)
    if name in NUL:
        check(send_data(c, msg), 550, "5.6.0", what=f"{name}: end of data")
        c.expect("NOOP", 250)
        c.quit()
        assert_nothing_delivered(sh, name)
        assert len(mail_commands(sh)) <= 1
        return
    check(send_data(c, msg), 250, "2.0.0", what=f"{name}: end of data")
    c.expect("NOOP", 250)
    c.quit()
    assert sh.wait_idle(5)
    t = only_message(sh)
    raw = bytes(t.data_raw)
    assert bare_newlines(raw) == [], \
        f"{name}: bare CR/LF upstream at {bare_newlines(raw)}: {raw!r}"
    assert raw.count(b"\r\n.\r\n") == 1 and raw.endswith(b"\r\n.\r\n") \
        or raw == b".\r\n", f"{name}: not exactly one end of data: {raw!r}"
    assert len(mail_commands(sh)) == 1, \
        f"{name}: a second MAIL reached the smarthost: {mail_commands(sh)!r}"
    _m, rest = split_tagged(t.data)
    want = normalize(msg)
    assert rest == want, f"{name}:\ngot  {rest!r}\nwant {want!r}"
    # a laxer smarthost (LF or CR as line end) sees no end before ours
    body = raw[:-3]         # without the final ".\r\n"
    for end in (b"\n.\n", b"\r.\r", b"\r.\n", b"\n.\r"):
        assert end not in body, f"{name}: {end!r} upstream"


def test_bare_lf_elsewhere_is_refused_with_reject(smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))      # reject is the default
    c = d.authed(USER)
    begin(c)
    r = send_data(c, message(b"one line\nwith a bare LF\r\nbye\r\n"))
    check(r, 550, "5.5.2", what="bare LF")
    c.quit()
    assert_nothing_delivered(sh, "bare LF")


def test_bare_cr_in_header_is_refused_with_reject(smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    begin(c)
    r = send_data(c, b"Subject: a\rb\r\n\r\nbody\r\n")
    check(r, 550, "5.5.2", what="bare CR in a header")
    c.quit()
    assert_nothing_delivered(sh, "bare CR")


def test_dot_stuffing_is_redone_for_normalized_lines(smarthosts, authrelay):
    """After normalizing, a line that starts with "." goes out stuffed,
    and the client's stuffing is never doubled."""
    sh = smarthosts()
    d = authrelay(config=relay_config(
        sh, policy={"bare_newline": "normalize"}))
    c = d.authed(USER)
    begin(c)
    msg = message(b"a\n.hidden\r\n..stuffed\r\nb\r.\r\n..\r\nend\r\n")
    check(send_data(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    t = only_message(sh)
    _m, rest = split_tagged(t.data)
    assert rest == normalize(msg), f"got {rest!r}\nwant {normalize(msg)!r}"
    assert bare_newlines(bytes(t.data_raw)) == []


def test_smuggled_transaction_in_a_pipelined_burst(smarthosts, authrelay):
    """The whole attack in one write: DATA, the message with "\\n.\\n"
    and a second transaction, the real end, QUIT. One message upstream
    (normalize) and the replies line up: 354, 250, 221."""
    sh = smarthosts()
    d = authrelay(config=relay_config(
        sh, policy={"bare_newline": "normalize"}))
    c = d.authed(USER)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    c.expect("RCPT TO:<bob@example.net>", 250)
    msg = smuggling_message(b"\n.\n")
    c.send(b"DATA\r\n" + msg + b".\r\nQUIT\r\n")
    check(c.read_reply(), 354, what="DATA")
    check(c.read_reply(), 250, "2.0.0", what="end of data")
    check(c.read_reply(), 221, what="QUIT")
    assert sh.wait_idle(5)
    assert len(sh.messages) == 1
    assert len(mail_commands(sh)) == 1
