"""Pipelining towards the smarthost (RFC 2920): when the client pipelines
MAIL, RCPTs and DATA and the smarthost offers PIPELINING, they go upstream
in one write; every reply still belongs to its command and reaches the
client in the order of the commands, the smarthost's per-recipient
replies included. Without PIPELINING at the smarthost, one command at a
time as before, with the same replies."""

import pytest

from harness import check
from smarthost import (CLOSE, SENDER, USER, message, only_message,
                       relay_config, send_data, split_tagged, submit)

pytest_plugins = ["smarthost"]

REFUSED = "nobody@example.net"
REFUSAL = "550 5.1.1 No such user here"


def group(rcpts):
    return (f"MAIL FROM:<{SENDER}>\r\n" +
            "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts) + "DATA\r\n")


def reads_with_commands(sess):
    """The smarthost's reads that carried commands after the set-up, as
    lists of command verbs (the message itself excluded)."""
    out = []
    for chunk in sess.reads:
        verbs = [line.split(b" ", 1)[0].split(b":", 1)[0].upper()
                 for line in chunk.split(b"\r\n") if line]
        if verbs and verbs[0] in (b"MAIL", b"RCPT", b"DATA"):
            out.append(verbs)
    return out


@pytest.mark.parametrize("pipelining", [True, False],
                         ids=["smarthost-pipelines", "one-at-a-time"])
def test_refused_recipient_in_the_middle(smarthosts, authrelay, pipelining):
    sh = smarthosts(pipelining=pipelining, reject_rcpt={REFUSED: REFUSAL})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    rcpts = ["bob@example.net", REFUSED, "carol@example.net"]
    # the first message opens the relay connection; the second is the
    # one whose commands can all go upstream at once
    for n in range(2):
        c.send(group(rcpts))
        check(c.read_reply(), 250, "2.1.0", what=f"MAIL {n}")
        check(c.read_reply(), 250, "2.1.5", what=f"RCPT bob {n}")
        r = c.read_reply()
        check(r, 550, "5.1.1", what=f"RCPT refused {n}")
        assert "No such user here" in r.first_line, \
            f"got {r.first_line!r}, want the smarthost's own text"
        check(c.read_reply(), 250, "2.1.5", what=f"RCPT carol {n}")
        check(c.read_reply(), 354, what=f"DATA {n}")
        check(send_data(c, message(b"message %d\r\n" % n)), 250, "2.0.0",
              what=f"end of data {n}")
    c.quit()
    assert sh.connections == 1
    sess = sh.sessions[0]
    groups = reads_with_commands(sess)
    if pipelining:
        want = [b"MAIL"] + [b"RCPT"] * 3 + [b"DATA"]
        assert want in groups, \
            f"got the reads {groups}, want one with {want}"
    else:
        assert all(len(g) == 1 for g in groups), \
            f"got the reads {groups}, want one command in each"
    tx = sess.transactions
    assert [len(t.rcpts) for t in tx] == [2, 2], \
        f"got {[len(t.rcpts) for t in tx]} accepted recipients, want 2, 2"
    # two recipients: no "for <...>" in our Received header
    assert split_tagged(tx[1].data)[1] == message(b"message 1\r\n")


def test_our_own_refusal_keeps_its_place(smarthosts, authrelay):
    """A recipient we refuse ourselves (non-ASCII without SMTPUTF8)
    between recipients that went upstream: its reply comes between
    theirs, not before the MAIL's."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.send(group(["bob@example.net"]))      # opens the relay connection
    for code in (250, 250, 354):
        check(c.read_reply(), code)
    check(send_data(c, message()), 250)
    c.send(group(["bob@example.net", "jürgen@example.net",
                  "carol@example.net"]))
    want = [(250, "2.1.0"), (250, "2.1.5"), (553, "5.6.7"), (250, "2.1.5"),
            (354, None)]
    for i, (code, enh) in enumerate(want):
        check(c.read_reply(), code, enh, what=f"reply {i}")
    check(send_data(c, message()), 250)
    c.quit()
    assert [len(t.rcpts) for t in sh.sessions[0].transactions] == [1, 2]


def test_one_recipient_is_named_in_received(smarthosts, authrelay):
    """The Received header's "for <rcpt>" is written once the recipients'
    replies are in, though DATA went upstream before them."""
    sh = smarthosts(reject_rcpt={REFUSED: REFUSAL})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.send(group([REFUSED, "bob@example.net"]))
    for code in (250, 550, 250, 354):
        check(c.read_reply(), code)
    check(send_data(c, message()), 250)
    c.quit()
    tagged = only_message(sh).data
    assert b"\tfor <bob@example.net>;" in tagged.split(b"\r\n\r\n")[0], \
        f"got {tagged[:400]!r}, want the one accepted recipient named"


def test_refused_mail_refuses_what_follows(smarthosts, authrelay):
    sh = smarthosts(faults={"MAIL": "451 4.3.0 Try later\r\n"})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    # The session's first MAIL opens the relay connection and gets the
    # smarthost's refusal; after it, what one at a time would get: the
    # command gate's 503 "Need MAIL command", DATA's too.
    c.send(group(["bob@example.net", "carol@example.net"]))
    want = [(451, "4.3.0"), (503, "5.5.1"), (503, "5.5.1"), (503, "5.5.1")]
    for i, (code, enh) in enumerate(want):
        check(c.read_reply(), code, enh, what=f"first MAIL, reply {i}")
    # On the open connection MAIL is ours, as for a client that waits
    # for each reply (test_refusal_of_a_held_mail_answers_each_recipient):
    # the smarthost's refusal answers each recipient, DATA finds none.
    # The group still goes upstream in one write.
    c.send(group(["bob@example.net", "carol@example.net"]))
    want = [(250, "2.1.0"), (451, "4.3.0"), (451, "4.3.0"), (554, "5.5.1")]
    for i, (code, enh) in enumerate(want):
        check(c.read_reply(), code, enh, what=f"second MAIL, reply {i}")
    c.expect("NOOP", 250)
    c.expect("RSET", 250)
    c.quit()
    assert sh.messages == []
    assert [b"MAIL", b"RCPT", b"RCPT", b"DATA"] in \
        reads_with_commands(sh.sessions[0])


@pytest.mark.parametrize("smarthost_mail", ["accepts", "refuses"])
@pytest.mark.parametrize("cmds", [
    ["RCPT TO:<bob@example.net>", "RCPT TO:<carol@example.net>", "RSET"],
    ["NOOP", "RSET"],
    ["RCPT TO:<bob@example.net>", "EHLO client.example",
     f"MAIL FROM:<{SENDER}>", "RSET"],
], ids=["recipients", "rset", "ehlo"])
def test_replies_do_not_depend_on_how_commands_arrive(smarthosts, authrelay,
                                                      cmds, smarthost_mail):
    """The same commands after a MAIL on an open connection, pipelined
    in one write or sent one by one, get the same replies, whether the
    MAIL went upstream at once (commands behind it) or with the first
    RCPT (none): RSET's and the next MAIL's included."""
    def mail(sess, line):
        if smarthost_mail == "refuses" and len(sess.transactions) > 1:
            return REFUSE_SENDER
        return None

    # RSET's reply tells the smarthost's from ours
    sh = smarthosts(faults={"MAIL": mail,
                            "RSET": b"250 2.0.0 Flushed at the smarthost\r\n"})
    # a connection of its own for each session: the smarthost counts
    # transactions per connection
    d = authrelay(config=relay_config(sh, connection_cache=0))
    cmds = [f"MAIL FROM:<{SENDER}>"] + cmds
    got = []
    for together in (True, False):
        c = d.authed(USER)
        one_by_one(c, 0)
        if together:
            c.send("".join(f"{cmd}\r\n" for cmd in cmds))
            got.append([c.read_reply() for _ in cmds])
        else:
            got.append([c.cmd(cmd) for cmd in cmds])
        c.quit()
    assert [(r.code, r.lines) for r in got[0]] == \
        [(r.code, r.lines) for r in got[1]], \
        f"pipelined: {got[0]!r}, one by one: {got[1]!r}"
    assert got[1][0].code == 250 and got[1][-1].code == 250


def transaction_verbs(sess):
    """MAIL, RCPT, DATA and RSET as the smarthost got them, but a RSET at
    the end (the connection parked for the next session)."""
    verbs = [v for v in sess.verbs()
             if v in (b"MAIL", b"RCPT", b"DATA", b"RSET")]
    return verbs[:-1] if verbs[-1:] == [b"RSET"] else verbs


def one_by_one(c, n, rcpts=("bob@example.net",)):
    """A message from a client that waits for each reply."""
    check(submit(c, message(b"message %d\r\n" % n), rcpts=rcpts), 250,
          "2.0.0", what=f"message {n}")


@pytest.mark.parametrize("pipelining", [True, False],
                         ids=["smarthost-pipelines", "one-at-a-time"])
def test_mail_goes_upstream_with_the_first_rcpt(smarthosts, authrelay,
                                                pipelining):
    """A client that waits for each reply: on a smarthost connection that
    is open and offers PIPELINING, MAIL is answered at once and goes
    upstream in one write with the first RCPT (one round trip to the
    smarthost less per message). The session's first MAIL opens the
    connection and goes alone; without PIPELINING every command goes
    alone."""
    sh = smarthosts(pipelining=pipelining)
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    rcpts = ("bob@example.net", "carol@example.net")
    for n in range(3):
        one_by_one(c, n, rcpts)
    c.quit()
    first = [[b"MAIL"], [b"RCPT"], [b"RCPT"], [b"DATA"]]
    later = ([[b"MAIL", b"RCPT"], [b"RCPT"], [b"DATA"]] if pipelining
             else first)
    groups = reads_with_commands(sh.sessions[0])
    assert groups == first + later * 2, \
        f"got the smarthost's reads {groups}"
    tx = sh.sessions[0].transactions
    assert [len(t.rcpts) for t in tx] == [2, 2, 2]
    assert [split_tagged(m.data)[1] for m in sh.messages] == \
        [message(b"message %d\r\n" % n) for n in range(3)]


REFUSE_SENDER = b"553 5.7.1 Sender address rejected: not owned by user\r\n"


def second_mail_gets(smarthosts, authrelay, fault):
    """A session whose first message goes, and whose second MAIL (ours:
    the client waits for its reply) meets fault at the smarthost. The
    daemon, the smarthost and the client, after that MAIL's 250."""
    def second_mail(sess, line):
        return fault if len(sess.transactions) == 2 else None

    sh = smarthosts(faults={"MAIL": second_mail})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    one_by_one(c, 0)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    return d, sh, c


def test_refusal_of_a_held_mail_answers_each_recipient(smarthosts,
                                                      authrelay):
    """The smarthost refuses a MAIL that went with the first RCPT: that
    recipient and each later one get the smarthost's refusal, its text
    included (the later ones without asking it again), DATA gets 554
    5.5.1, nothing is delivered, and after RSET the next message goes."""
    d, sh, c = second_mail_gets(smarthosts, authrelay, REFUSE_SENDER)
    for rcpt in ("bob@example.net", "carol@example.net"):
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        check(r, 553, "5.7.1", what=f"RCPT {rcpt}")
        assert "not owned by user" in r.first_line, \
            f"got {r.first_line!r}, want the smarthost's own text"
    check(c.cmd("DATA"), 554, "5.5.1", what="DATA")
    c.expect("RSET", 250)
    one_by_one(c, 2)
    c.quit()
    assert sh.connections == 1
    # carol's RCPT was not asked, the RSET was ours (the smarthost had
    # no transaction); a RSET at the end parks the connection
    assert transaction_verbs(sh.sessions[0]) == \
        [b"MAIL", b"RCPT", b"DATA", b"MAIL", b"RCPT", b"MAIL", b"RCPT",
         b"DATA"]
    assert [split_tagged(m.data)[1] for m in sh.messages] == \
        [message(b"message 0\r\n"), message(b"message 2\r\n")]


def test_held_mail_lost_with_the_connection(smarthosts, authrelay):
    """The smarthost hangs up as the MAIL that went with the first RCPT
    arrives: the client, which had its 250 for MAIL, gets 451 4.4.1 for
    the RCPT; after RSET the next message goes on a new connection."""
    d, sh, c = second_mail_gets(smarthosts, authrelay, CLOSE)
    check(c.cmd("RCPT TO:<bob@example.net>"), 451, "4.4.1", what="RCPT")
    assert d.alive(), f"the daemon died:\n{d.log()}"
    c.expect("RSET", 250)
    one_by_one(c, 2)
    c.quit()
    assert sh.connections == 2
    assert [split_tagged(m.data)[1] for m in sh.messages] == \
        [message(b"message 0\r\n"), message(b"message 2\r\n")]


def test_held_mail_never_reaches_the_smarthost_alone(smarthosts, authrelay):
    """MAIL answered by us and then RSET, or no recipient at all: the
    smarthost sees neither that MAIL nor a RSET for it."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    one_by_one(c, 0)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    c.expect("RSET", 250)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    check(c.cmd("DATA"), 503, "5.5.1", what="DATA without RCPT")
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 503, "5.5.1", what="nested MAIL")
    c.expect("RSET", 250)
    one_by_one(c, 1)
    c.quit()
    assert transaction_verbs(sh.sessions[0]) == \
        [b"MAIL", b"RCPT", b"DATA"] * 2
    assert len(sh.messages) == 2


def test_smarthost_lost_in_the_middle(smarthosts, authrelay):
    """The smarthost hangs up at the second RCPT of a pipelined group:
    every command still waiting gets its 451, in order, and the session
    goes on."""
    seen = []

    def second_rcpt(sess, line):
        seen.append(line)
        return CLOSE if len(seen) == 4 else None

    sh = smarthosts(faults={"RCPT": second_rcpt})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.send(group(["bob@example.net", "carol@example.net"]))
    for code in (250, 250, 250, 354):
        check(c.read_reply(), code)
    check(send_data(c, message()), 250)
    c.send(group(["bob@example.net", "carol@example.net"]))
    check(c.read_reply(), 250, what="MAIL")
    check(c.read_reply(), 250, what="RCPT bob")
    for what in ("RCPT carol", "DATA"):
        check(c.read_reply(), 451, "4.4.1", what=what)
    c.expect("RSET", 250)
    c.send(group(["bob@example.net"]))
    for code in (250, 250, 354):
        check(c.read_reply(), code)
    check(send_data(c, message(b"after\r\n")), 250)
    c.quit()
    assert len(sh.messages) == 2


@pytest.mark.parametrize("pipelining", [True, False],
                         ids=["smarthost-pipelines", "one-at-a-time"])
def test_recipient_limit_counts_accepted_ones(smarthosts, authrelay,
                                              pipelining):
    """max_recipients counts the recipients the smarthost accepted: a
    RCPT pipelined behind recipients still waiting for their replies
    waits for them, and finds room after a refusal as it would one at a
    time (no 452 for carol)."""
    sh = smarthosts(pipelining=pipelining, reject_rcpt={REFUSED: REFUSAL})
    d = authrelay(config=relay_config(sh, server={"max_recipients": 2}))
    c = d.authed(USER)
    c.send(group(["bob@example.net"]))      # opens the relay connection
    for code in (250, 250, 354):
        check(c.read_reply(), code)
    check(send_data(c, message()), 250)
    c.send(group([REFUSED, "bob@example.net", "carol@example.net",
                  "dave@example.net"]))
    want = [(250, "2.1.0"), (550, "5.1.1"), (250, "2.1.5"), (250, "2.1.5"),
            (452, "4.5.3"), (354, None)]
    for i, (code, enh) in enumerate(want):
        check(c.read_reply(), code, enh, what=f"reply {i}")
    check(send_data(c, message()), 250)
    c.quit()
    tx = sh.sessions[0].transactions
    assert [len(t.rcpts) for t in tx] == [1, 2], \
        f"got {[len(t.rcpts) for t in tx]} accepted recipients, want 1, 2"
    assert [len(t.rcpt_lines) for t in tx] == [1, 3], \
        f"got {[len(t.rcpt_lines) for t in tx]} RCPTs relayed, want 1, 3"


def test_354_behind_refused_recipients_sends_no_data(smarthosts, authrelay):
    """DATA pipelined behind recipients the smarthost all refused, and a
    smarthost that answers it 354 all the same (RFC 2920 §3.1 says 554):
    the client gets 554 5.5.1 as without pipelining, the smarthost not
    one octet of data, and that connection is dropped; the session goes
    on with a new one."""
    sh = smarthosts(reject_rcpt={REFUSED: REFUSAL}, data_without_rcpt=True)
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.send(group(["bob@example.net"]))      # opens the relay connection
    for code in (250, 250, 354):
        check(c.read_reply(), code)
    check(send_data(c, message(b"first\r\n")), 250)
    c.send(group([REFUSED]))
    for i, (code, enh) in enumerate([(250, "2.1.0"), (550, "5.1.1"),
                                     (554, "5.5.1")]):
        check(c.read_reply(), code, enh, what=f"reply {i}")
    c.expect("NOOP", 250)
    c.send(group(["bob@example.net"]))
    for code in (250, 250, 354):
        check(c.read_reply(), code)
    check(send_data(c, message(b"second\r\n")), 250)
    c.quit()
    sh.wait_idle()
    assert sh.connections == 2, \
        f"got {sh.connections} smarthost connections, want 2"
    refused = sh.sessions[0].transactions[1]
    assert refused.data_started and refused.data_raw == b"", \
        f"got {refused!r}, want a 354 sent and no data received"
    assert [m.data.endswith(b"\r\nfirst\r\n") or
            m.data.endswith(b"\r\nsecond\r\n") for m in sh.messages] == \
        [True, True], f"got {sh.messages!r}, want the two messages"


@pytest.mark.parametrize("pipelining", [True, False],
                         ids=["smarthost-pipelines", "one-at-a-time"])
def test_data_behind_refused_recipients_is_a_bad_command(smarthosts,
                                                        authrelay,
                                                        pipelining):
    """DATA after recipients all refused gets 554 5.5.1 and counts
    against max_bad_commands, pipelined upstream or not: the second
    brings the 421."""
    sh = smarthosts(pipelining=pipelining, reject_rcpt={REFUSED: REFUSAL})
    d = authrelay(config=relay_config(sh, server={"max_bad_commands": 2}))
    c = d.authed(USER)
    c.send(group(["bob@example.net"]))      # opens the relay connection
    for code in (250, 250, 354):
        check(c.read_reply(), code)
    check(send_data(c, message()), 250)
    for n in range(2):
        c.send(group([REFUSED]))
        for i, (code, enh) in enumerate([(250, "2.1.0"), (550, "5.1.1"),
                                         (554, "5.5.1")]):
            check(c.read_reply(), code, enh, what=f"round {n} reply {i}")
        if n == 0:
            c.expect("RSET", 250)
    r = c.read_reply()
    check(r, 421, "4.7.0", what="after the second refused DATA")
    assert "Too many errors" in r.first_line, \
        f"got {r.first_line!r}, want the bad-command limit's 421"


def test_bad_command_limit_behind_a_pipelined_rcpt(smarthosts, authrelay):
    """The bad-command limit reached by refusals of ours held behind a
    RCPT still waiting for the smarthost: the client reads every reply
    in order, then the 421, then the close, as one command at a time
    (the close used to drop the held replies and the 421)."""
    sh = smarthosts(delays={"RCPT": 0.2})
    d = authrelay(config=relay_config(sh, server={"max_bad_commands": 2}))
    c = d.authed(USER)
    c.send(group(["bob@example.net"]))      # opens the relay connection
    for code in (250, 250, 354):
        check(c.read_reply(), code)
    check(send_data(c, message()), 250)
    c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<bob@example.net>\r\n"
           "RCPT TO:<jürgen@example.net>\r\nRCPT TO:<jörg@example.net>\r\n"
           "RCPT TO:<carol@example.net>\r\n")
    want = [(250, "2.1.0"), (250, "2.1.5"), (553, "5.6.7"), (553, "5.6.7"),
            (421, "4.7.0")]
    for i, (code, enh) in enumerate(want):
        check(c.read_reply(), code, enh, what=f"reply {i}")
    c.assert_closed()
    rcpts = [t.rcpt_lines for t in sh.sessions[0].transactions]
    assert rcpts[1] == [b"RCPT TO:<bob@example.net>"], \
        f"got {rcpts[1]!r} relayed, want bob's RCPT alone"
