"""Rate limits per authenticated user ([policy] user_rate and
user_recipient_rate = N/DURATION; issue 5).

Over the limit, MAIL gets 450 4.7.1 (messages) and RCPT gets 450 4.7.1
(recipients); the count is per user and across all sessions and threads.
The window slides approximately (two fixed windows, the previous one
weighted), so once the limit is hit a message passes again at most two
windows later: the tests use a 4 s window and wait two windows and a
margin.
"""

import time

from harness import check
from policy_helpers import (authed_from, marker, message,
                            sessions_on_two_threads, transact, wait_record)

WINDOW = 4.0
# Two windows and a margin (sanitizer builds are slower).
AFTER_TWO_WINDOWS = 2 * WINDOW + 1.5


def rates(**policy):
    return {"policy": {"sender_check": "off", **policy},
            "server": {"threads": 2}}


def send_ok(c, smarthost, rcpts=("bob@example.net",), what=""):
    mark = marker()
    out = transact(c, "alice@example.com", rcpts=rcpts,
                   data=message(mark=mark))
    assert out.code == 250 and out.stage == "end of data", \
        f"{what}: got {out!r}, want 250 at the end of data"
    assert smarthost.wait_for(mark.encode()) is not None, \
        f"{what}: message not at the smarthost"
    return time.monotonic()


def mail_refused(c, what=""):
    r = c.cmd("MAIL FROM:<alice@example.com>")
    check(r, 450, "4.7.1", what)
    assert "rate" in r.text.lower(), f"{what}: got {r.first_line!r}, " \
        f"want a text that names the rate limit"
    return r


def test_n_plus_first_message_is_450_then_passes_later(authrelay, smarthost):
    d = authrelay(config=rates(user_rate=f"3/{int(WINDOW)}s"))
    # Three messages in three sessions (a client that reconnects).
    last = None
    for i in range(3):
        c = authed_from(d, "127.0.0.1")
        last = send_ok(c, smarthost, what=f"message {i + 1} of 3")
        c.quit()
    c = authed_from(d, "127.0.0.1")
    mail_refused(c, "message 4 inside the window")
    # Still refused right after, in the same session: nothing about the
    # refusal counts as a message.
    mail_refused(c, "message 4, again")
    rec = wait_record(d, "rate-limit", user="alice")
    assert rec["limit"] == "messages", f"got {rec.line!r}"
    # Another user is not limited by alice's count.
    b = authed_from(d, "127.0.0.1", "bob")
    mark = marker()
    out = transact(b, "bob@example.com", data=message(mark=mark))
    assert out.code == 250, f"bob: got {out!r}, want 250"
    b.quit()
    # Two windows later alice may send again.
    time.sleep(max(0.0, last + AFTER_TWO_WINDOWS - time.monotonic()))
    send_ok(c, smarthost, what="after two windows")
    c.quit()


def test_recipient_rate_450_at_rcpt_then_passes_later(authrelay, smarthost):
    d = authrelay(config=rates(user_recipient_rate=f"4/{int(WINDOW)}s"))
    c = authed_from(d, "127.0.0.1")
    send_ok(c, smarthost, rcpts=("r1@example.net", "r2@example.net",
                                 "r3@example.net"), what="3 recipients")
    check(c.cmd("MAIL FROM:<alice@example.com>"), 250, None, "MAIL")
    check(c.cmd("RCPT TO:<r4@example.net>"), 250, None, "4th recipient")
    t_last = time.monotonic()
    r = check(c.cmd("RCPT TO:<r5@example.net>"), 450, "4.7.1",
              "5th recipient")
    assert "recipient" in r.text.lower() and "rate" in r.text.lower(), \
        f"got {r.first_line!r}, want the recipient rate named"
    check(c.cmd("RCPT TO:<r6@example.net>"), 450, "4.7.1", "6th recipient")
    # The message goes to the recipient that was accepted, only.
    mark = marker()
    check(c.cmd("DATA"), 354)
    c.send(message(mark=mark) + b".\r\n")
    check(c.read_reply(), 250, None, "end of data")
    env = smarthost.wait_for(mark.encode())
    assert env is not None and env.rcpt_tos == ["r4@example.net"], \
        f"got recipients {env and env.rcpt_tos}, want only r4"
    rec = wait_record(d, "rate-limit", user="alice", limit="recipients")
    assert rec["client"] == "127.0.0.1"
    # Two windows later: recipients are accepted again.
    time.sleep(max(0.0, t_last + AFTER_TWO_WINDOWS - time.monotonic()))
    send_ok(c, smarthost, rcpts=("r7@example.net", "r8@example.net"),
            what="after two windows")
    c.quit()


def test_message_limit_holds_across_two_threads(authrelay, smarthost):
    """threads = 2: sessions of alice on both threads share one count."""
    d = authrelay(config=rates(user_rate="4/60s"))
    threads = sessions_on_two_threads(
        d, lambda: authed_from(d, "127.0.0.1"), per_thread=2)
    (ta, sa), (tb, sb) = threads.items()
    # Alternate the threads: A, B, A, B.
    for i, c in enumerate([sa[0], sb[0], sa[1], sb[1]]):
        send_ok(c, smarthost, what=f"message {i + 1} of 4")
    for tid, sessions in threads.items():
        for c in sessions:
            mail_refused(c, f"message 5 on thread {tid}")
    # A new session on whichever thread: refused as well.
    c = authed_from(d, "127.0.0.1")
    mail_refused(c, "message 5 in a new session")
    for sessions in threads.values():
        for s in sessions:
            s.quit()
    c.quit()


def test_recipient_limit_holds_across_two_threads(authrelay, smarthost):
    d = authrelay(config=rates(user_recipient_rate="5/60s"))
    threads = sessions_on_two_threads(
        d, lambda: authed_from(d, "127.0.0.1"), per_thread=1)
    (ta, [a]), (tb, [b]) = threads.items()
    send_ok(a, smarthost, rcpts=("r1@example.net", "r2@example.net"),
            what="2 recipients on thread A")
    send_ok(b, smarthost, rcpts=("r3@example.net", "r4@example.net"),
            what="2 recipients on thread B")
    check(a.cmd("MAIL FROM:<alice@example.com>"), 250, None, "MAIL (A)")
    check(b.cmd("MAIL FROM:<alice@example.com>"), 250, None, "MAIL (B)")
    check(a.cmd("RCPT TO:<r5@example.net>"), 250, None, "5th recipient (A)")
    check(b.cmd("RCPT TO:<r6@example.net>"), 450, "4.7.1",
          "6th recipient (B)")
    check(a.cmd("RCPT TO:<r7@example.net>"), 450, "4.7.1",
          "7th recipient (A)")
    a.quit()
    b.quit()


def test_concurrent_transactions_cannot_exceed_the_limit(authrelay,
                                                         smarthost):
    """Messages whose MAIL came before any of them was delivered count
    too: three sessions that each open a transaction at once must not
    deliver three messages under a limit of two (a hijacked account with
    many connections gets no more than the limit)."""
    d = authrelay(config=rates(user_rate="2/60s"))
    sessions = [authed_from(d, "127.0.0.1") for _ in range(3)]
    accepted = []
    for i, c in enumerate(sessions):
        r = c.cmd("MAIL FROM:<alice@example.com>")
        if r.code == 250:
            check(c.cmd("RCPT TO:<bob@example.net>"), 250, None, "RCPT")
            accepted.append(c)
        else:
            check(r, 450, "4.7.1", f"MAIL in session {i + 1}")
    delivered = 0
    for c in accepted:
        check(c.cmd("DATA"), 354)
        c.send(message(mark=marker()) + b".\r\n")
        if c.read_reply().code == 250:
            delivered += 1
    for c in sessions:
        c.close()
    assert delivered <= 2, \
        f"got {delivered} messages delivered under user_rate = 2/60s " \
        f"({len(accepted)} MAIL commands accepted while none was " \
        f"delivered yet), want at most 2"


def test_group_rate_overrides_user_rate(authrelay, smarthost):
    """[policy] group_rate: members of the group (NSS, through the auth
    worker's reply) get its limit instead of user_rate; others keep
    user_rate. alice and carol are in mail-senders, bob is not."""
    d = authrelay(config=rates(user_rate="1/1h",
                               group_rate="3/1h mail-senders"),
                  nss=True)
    for i in range(3):
        c = authed_from(d, "127.0.0.1", user="alice")
        send_ok(c, smarthost, what=f"alice (mail-senders) message {i + 1}")
        c.quit()
    c = authed_from(d, "127.0.0.1", user="alice")
    mail_refused(c, "alice's 4th message, over the group's 3")
    c.quit()
    c = authed_from(d, "127.0.0.1", user="bob")
    r = c.cmd("MAIL FROM:<bob@example.com>")
    check(r, 250, None, "bob's first message (user_rate 1)")
    c.cmd("RSET")
    r = c.cmd("MAIL FROM:<bob@example.com>")
    check(r, 450, "4.7.1", "bob's second message, over user_rate")
    c.quit()
