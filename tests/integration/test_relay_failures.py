"""Relay failures (issue 3): a smarthost that is down, dies mid-DATA,
answers garbage or is not the first in the list; a client that goes away
in any state. The client never believes a message was accepted that the
smarthost did not take, the smarthost never keeps half a message, the
daemon never crashes and leaks no file descriptor.
"""

import time

import pytest

import conftest
import harness

from harness import check, free_port
from smarthost import (CLOSE, RESET, SENDER, USER, assert_nothing_delivered,
                       begin, fd_count, fds, message, only_message,
                       relay_config, send_data, split_tagged, submit,
                       wait_fd_count)

pytest_plugins = ["smarthost"]


def assert_451(r, what):
    """A temporary failure: 451 4.4.1 (SPEC), or the smarthost's 4xx."""
    assert r.code // 100 == 4, f"{what}: got {r.first_line!r}, want 4xx"
    check(r, r.code, None, what=what)


def assert_serves(d, sh, what=""):
    """The daemon is alive and relays the next session's message."""
    assert d.alive(), f"the daemon died {what}:\n{d.log()}"
    before = len(sh.messages)
    c = d.authed(USER)
    msg = message(b"the next session works\r\n")
    check(submit(c, msg), 250, "2.0.0", what=f"next session {what}")
    c.quit()
    assert len(sh.messages) == before + 1
    assert split_tagged(sh.messages[-1].data)[1] == msg


# --------------------------------------------------------------------------
# Smarthost down, and back

def test_smarthost_down_is_451_and_retry_delivers_exactly_once(smarthosts,
                                                               authrelay):
    port = free_port()          # nothing listens there yet
    d = authrelay(config=relay_config(port))
    c = d.authed(USER)
    r = c.cmd(f"MAIL FROM:<{SENDER}>")
    check(r, 451, "4.4.1", what="MAIL with the smarthost down")
    # the transaction is gone: RCPT needs a new MAIL
    r = c.cmd("RCPT TO:<bob@example.net>")
    assert r.code == 503, f"RCPT after a failed MAIL: {r!r}"

    sh = smarthosts(port=port)  # the smarthost comes back
    msg = message(b"delivered once\r\n")
    check(submit(c, msg), 250, "2.0.0", what="retry after the smarthost "
                                             "came back")
    c.quit()
    assert split_tagged(only_message(sh).data)[1] == msg


def test_smarthost_down_new_session_retry(smarthosts, authrelay):
    """The retry from a new session (how clients retry) also works, even
    though the smarthost was marked dead a moment ago."""
    port = free_port()
    d = authrelay(config=relay_config(port))
    c = d.authed(USER)
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1", what="MAIL")
    c.quit()
    sh = smarthosts(port=port)
    c = d.authed(USER)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="retry")
    c.quit()
    assert split_tagged(only_message(sh).data)[1] == msg


def test_smarthost_refusing_service_at_greeting_is_451(smarthosts,
                                                       authrelay):
    sh = smarthosts(faults={"greeting": b"554 5.3.2 not now\r\n"})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    assert_451(c.cmd(f"MAIL FROM:<{SENDER}>"), "MAIL")
    c.quit()
    assert b"MAIL" not in sh.command_verbs()


# --------------------------------------------------------------------------
# Smarthost gone mid-transaction

@pytest.mark.parametrize("mode", ["fin", "rst", "stop"])
def test_smarthost_killed_mid_data_is_451_and_keeps_nothing(smarthosts,
                                                            authrelay, mode):
    sh = smarthosts(close_after_data_bytes=None if mode == "stop"
                    else 50000, close_mode=mode)
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    begin(c)
    body = b"".join(b"line %06d of a message cut short\r\n" % i
                    for i in range(6000))        # ~200 KB
    msg = message(body)
    if mode == "stop":
        c.send(msg[:60000])
        assert sh.wait_for(lambda: sh.all_transactions() and
                           len(sh.all_transactions()[0].data_raw) > 0, 10)
        sh.stop()               # the whole smarthost goes away
        c.send(msg[60000:] + b".\r\n")
    else:
        c.send(msg + b".\r\n")
    r = c.read_reply()
    check(r, 451, "4.4.1", what="end of data after the smarthost died")
    assert_nothing_delivered(sh, "smarthost killed mid-DATA")
    # the session is in sync: the next command is a command
    c.expect("NOOP", 250)
    c.quit()
    if mode != "stop":
        assert_serves(d, sh, "after the smarthost died mid-DATA")


def test_smarthost_closes_instead_of_answering_the_dot(smarthosts,
                                                       authrelay):
    """The end of data was sent but never answered: the client must not
    get a 2xx (it retries; a duplicate is possible, a loss is not)."""
    sh = smarthosts(faults={"DOT": CLOSE})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    r = submit(c, message())
    assert_451(r, "end of data unanswered")
    c.quit()
    sh.faults.clear()
    assert_serves(d, sh)


def test_smarthost_too_slow_to_answer_the_dot(smarthosts, authrelay):
    sh = smarthosts(delays={"DOT": 4})
    d = authrelay(config=relay_config(sh, server={"data_timeout": "2s"}))
    c = d.authed(USER)
    begin(c)
    t0 = time.monotonic()
    r = send_data(c, message(), timeout=15)
    assert_451(r, "end of data answered too late")
    assert time.monotonic() - t0 < 10
    c.close()


@pytest.mark.parametrize("stage", ["MAIL", "RCPT"])
def test_relay_connection_lost_between_commands(smarthosts, authrelay,
                                                stage):
    """The smarthost hangs up after accepting MAIL (or RCPT), while the
    client is between commands: the next RCPT/DATA gets a 4xx, the
    daemon lives on, and nothing is delivered."""
    sh = smarthosts(after={stage: CLOSE})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    if stage == "RCPT":
        c.expect("RCPT TO:<bob@example.net>", 250)
    assert sh.wait_idle(5), "the smarthost did not hang up"
    time.sleep(0.3)             # the relay notices the close
    r = c.cmd("RCPT TO:<carol@example.net>" if stage == "MAIL" else "DATA")
    assert d.alive(), f"the daemon died:\n{d.log()}"
    assert r.code // 100 == 4, \
        f"{r.first_line!r} after the relay connection was lost, want 4xx"
    c.expect("RSET", 250)
    sh.after.clear()
    msg = message(b"after the lost connection\r\n")
    check(submit(c, msg), 250, "2.0.0", what="next transaction")
    c.quit()
    assert split_tagged(only_message(sh).data)[1] == msg


# --------------------------------------------------------------------------
# Client disconnects: nothing delivered, no fd leaked

STATES = ["after-mail", "after-rcpt", "after-data-354", "mid-data",
          "waiting-for-mail-reply", "waiting-for-rcpt-reply",
          "after-final-dot", "waiting-for-dot-reply"]


@pytest.mark.parametrize("state", STATES)
def test_client_disconnect(smarthosts, authrelay, state):
    """The client vanishes (TCP close without QUIT, no TLS close_notify)
    in each state. Nothing is delivered: no end of data reaches the
    smarthost, except "after-final-dot" and "waiting-for-dot-reply": the
    client sent the whole message and its end, so the proxy may relay it
    (and in the second case already has); there we assert at most one
    message and, if there is one, that it is complete and exact (the
    smarthost never keeps a partial one). The client then sees no reply
    and retries: a duplicate is possible (RFC 1047), a loss is not. In every case the relay
    connection is closed and the daemon's fd count is back to its
    baseline."""
    delays = {}
    if state == "waiting-for-mail-reply":
        delays = {"greeting": 1.0}
    elif state == "waiting-for-rcpt-reply":
        delays = {"RCPT": 1.0}
    elif state == "waiting-for-dot-reply":
        delays = {"DOT": 1.0}
    sh = smarthosts(delays=delays)
    d = authrelay(config=relay_config(sh))
    # baseline after one full session (lazy set-up done)
    assert_serves(d, sh, "(warm-up)")
    assert sh.wait_idle(5)
    time.sleep(0.2)
    base = fd_count(d.net_pid)
    base_fds = fds(d.net_pid)
    n_before = len(sh.messages)
    t_before = len(sh.all_transactions())

    c = d.authed(USER)
    msg = message(b"".join(b"body line %05d\r\n" % i for i in range(3000)))
    if state == "after-mail":
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
    elif state == "after-rcpt":
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<bob@example.net>", 250)
    elif state == "after-data-354":
        begin(c)
    elif state == "mid-data":
        begin(c)
        c.send(msg[:20000])
        assert sh.wait_for(lambda: len(sh.all_transactions()) > t_before
                           and len(sh.all_transactions()[-1].data_raw) > 0,
                           5), "no data reached the smarthost"
    elif state == "waiting-for-mail-reply":
        c.send(f"MAIL FROM:<{SENDER}>\r\n")
        time.sleep(0.3)
    elif state == "waiting-for-rcpt-reply":
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.send("RCPT TO:<bob@example.net>\r\n")
        time.sleep(0.3)
    elif state == "after-final-dot":
        begin(c)
        c.send(msg + b".\r\n")
    elif state == "waiting-for-dot-reply":
        begin(c)
        c.send(msg + b".\r\n")
        assert sh.wait_for(lambda: len(sh.messages) > n_before, 5)
    # gone, without QUIT and without a TLS close_notify
    c.close()

    assert sh.wait_for(lambda: all(s.closed.is_set() for s in sh.sessions),
                       10), \
        f"the relay connection stayed open after the client left ({state})"
    got = wait_fd_count(d.net_pid, base, timeout=10)
    assert got == base, f"fd leak after a client disconnect ({state}): " \
        f"{got} open, baseline {base}\nnow: {fds(d.net_pid)}\n" \
        f"baseline: {base_fds}"
    if state in ("after-final-dot", "waiting-for-dot-reply"):
        new = sh.messages[n_before:]
        assert len(new) <= 1, new
        for t in new:
            assert split_tagged(t.data)[1] == msg
    else:
        new = [t for s in sh.sessions[1:] for t in s.transactions]
        for t in new:
            assert not t.complete, f"delivered after a disconnect: {t!r}"
            assert b"\r\n.\r\n" not in b"\r\n" + bytes(t.data_raw)
        if state in ("after-mail", "after-rcpt", "waiting-for-mail-reply",
                     "waiting-for-rcpt-reply"):
            assert all(b"DATA" not in s.verbs() for s in sh.sessions[1:])
    assert_serves(d, sh, f"after a client disconnect ({state})")


# --------------------------------------------------------------------------
# Failover

def test_failover_to_the_second_smarthost(smarthosts, authrelay):
    dead = free_port()
    sh = smarthosts()
    d = authrelay(config=relay_config(dead, sh))
    c = d.authed(USER)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="via the second smarthost")
    c.quit()
    assert split_tagged(only_message(sh).data)[1] == msg


def test_failover_when_the_first_refuses_service(smarthosts, authrelay):
    first = smarthosts(faults={"greeting": b"421 4.3.2 going down\r\n"})
    second = smarthosts()
    d = authrelay(config=relay_config(first, second))
    c = d.authed(USER)
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="via the second smarthost")
    c.quit()
    assert b"MAIL" not in first.command_verbs()
    assert split_tagged(only_message(second).data)[1] == msg


def test_all_smarthosts_down_is_451(authrelay):
    d = authrelay(config=relay_config(free_port(), free_port()))
    c = d.authed(USER)
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1",
          what="MAIL with every smarthost down")
    c.quit()


def test_dead_first_smarthost_is_skipped_for_a_while(smarthosts, authrelay):
    """After a failure the first smarthost is not tried again at once:
    the next sessions go straight to the second."""
    first_port = free_port()
    second = smarthosts()
    d = authrelay(config=relay_config(first_port, second))
    for i in range(2):
        c = d.authed(USER)
        check(submit(c, message()), 250, "2.0.0", what=f"message {i}")
        c.quit()
    first = smarthosts(port=first_port)     # it comes back
    c = d.authed(USER)
    check(submit(c, message()), 250, "2.0.0", what="third message")
    c.quit()
    assert len(second.messages) == 3
    assert first.connections == 0, "a dead smarthost was retried at once"


# --------------------------------------------------------------------------
# Malformed smarthost replies (CVE-2020-8794 class): 4xx, no crash

MALFORMED = {
    "multiline-code-mismatch": b"250-2.1.0 first line\r\n"
                               b"251 2.1.0 other code\r\n",
    "multiline-code-mismatch-err": b"250-ok\r\n550 5.0.0 changed\r\n",
    "line-600-octets": b"250 " + b"x" * 600 + b"\r\n",
    "line-600-octets-continuation": b"250-" + b"x" * 600 + b"\r\n250 ok\r\n",
    "100000-continuation-lines": b"250-2.1.0 more\r\n" * 100000 +
                                 b"250 2.1.0 ok\r\n",
    "garbage": b"hello there, this is not SMTP\r\n",
    "binary-garbage": bytes(range(256)) + b"\r\n",
    "code-out-of-range": b"600 6.0.0 what\r\n",
    "code-too-short": b"25 ok\r\n",
    "code-1xx": b"150 1.0.0 preliminary\r\n",
    "bad-separator": b"250_ok\r\n",
    "no-line-end-then-close": (b"250 2.1.0 no line end", CLOSE),
    "empty-line": b"\r\n",
}


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DOT"])
@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_reply_is_4xx_and_daemon_lives(smarthosts, authrelay,
                                                 kind, stage):
    fault = MALFORMED[kind]
    sh = smarthosts(faults={stage: fault})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    r = c.cmd(f"MAIL FROM:<{SENDER}>")
    if stage == "MAIL":
        assert_451(r, f"MAIL answered with {kind}")
    else:
        check(r, 250, what="MAIL")
        r = c.cmd("RCPT TO:<bob@example.net>")
        if stage == "RCPT":
            assert_451(r, f"RCPT answered with {kind}")
        else:
            check(r, 250, what="RCPT")
            c.expect("DATA", 354)
            r = send_data(c, message())
            assert r.code != 250 and r.code // 100 == 4, \
                f"end of data answered with {kind}: got {r!r}, want 4xx"
    c.quit()
    sh.faults.clear()
    assert_serves(d, sh, f"after a {kind} reply to {stage}")


@pytest.mark.parametrize("where", ["after-greeting", "after-ehlo"])
def test_reply_before_the_command_is_4xx(smarthosts, authrelay, where):
    """A reply the proxy did not ask for yet (sent with the previous one)
    must not be taken as the answer to the next command."""
    stage = "greeting" if where == "after-greeting" else "EHLO"
    sh = smarthosts(after={stage: b"250 2.1.0 unsolicited: sender ok\r\n"})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    r = c.cmd(f"MAIL FROM:<{SENDER}>")
    assert r.code // 100 == 4, \
        f"MAIL answered {r.first_line!r}: a reply sent before the command " \
        f"was taken as its answer, want 4xx"
    c.quit()
    sh.after.clear()
    assert_serves(d, sh, "after an unsolicited reply")


def test_unsolicited_reply_while_idle_drops_the_relay(smarthosts,
                                                      authrelay):
    """Between transactions the smarthost speaks up: the relay connection
    is dropped, and the next MAIL opens a new one."""
    sh = smarthosts(after={"DOT": b"250 2.0.0 and another thing\r\n"})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    check(submit(c, message()), 250, "2.0.0", what="first message")
    assert sh.wait_idle(5), "the relay connection survived an " \
        "unsolicited reply"
    sh.after.clear()
    check(submit(c, message(b"second\r\n")), 250, "2.0.0",
          what="second message")
    c.quit()
    assert len(sh.messages) == 2
    assert sh.connections == 2, \
        "the relay connection survived an unsolicited reply"


@pytest.mark.parametrize("fault", [CLOSE, RESET])
def test_relay_lost_mid_pipeline_every_rcpt_is_temporary(smarthosts,
                                                         authrelay, fault):
    """MAIL, RCPT, RCPT, DATA pipelined; the smarthost dies on the first
    RCPT. The recipients must get a temporary failure each: a 5xx to
    the second one (say 503 "need MAIL") would make the client bounce a
    recipient for a passing fault upstream."""
    sh = smarthosts(faults={"RCPT": fault})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<bob@example.net>\r\n"
           "RCPT TO:<carol@example.net>\r\nDATA\r\n")
    check(c.read_reply(), 250, what="MAIL")
    r1, r2, r3 = c.read_reply(), c.read_reply(), c.read_reply()
    assert r1.code // 100 == 4, f"RCPT bob: {r1!r}"
    assert r2.code // 100 == 4, \
        f"RCPT carol after the relay died: {r2!r}, want 4xx"
    assert r3.code != 354, f"DATA: {r3!r}"
    c.expect("RSET", 250)
    sh.faults.clear()
    msg = message()
    check(submit(c, msg), 250, "2.0.0", what="next transaction")
    c.quit()
    assert split_tagged(only_message(sh).data)[1] == msg


def test_data_refused_again_and_again_does_not_grow_memory(smarthosts,
                                                           authrelay):
    """The smarthost refuses DATA (a 4xx to the DATA command) and the
    client tries DATA again in the same transaction, many times: memory
    stays flat (each DATA sets up the data filter anew)."""
    sh = smarthosts(faults={"DATA": b"451 4.3.0 not now\r\n"})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    c.expect("RCPT TO:<bob@example.net>", 250)
    for _ in range(50):
        c.expect("DATA", 451, "4.3.0")
    base = harness.rss_kib(d.net_pid)
    for _ in range(20):
        c.send("DATA\r\n" * 50)
        for _ in range(50):
            check(c.read_reply(), 451, "4.3.0", what="DATA")
    growth = harness.rss_kib(d.net_pid) - base
    c.expect("RSET", 250)
    c.quit()
    if conftest.SANITIZED:
        # ASan's quarantine keeps freed memory resident: no bound here
        # (its leak checker is off under pam_wrapper, see conftest).
        return
    assert growth < 2048, f"RSS grew by {growth} KiB over 1000 refused DATA"
