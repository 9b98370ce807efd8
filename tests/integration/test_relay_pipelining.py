"""Pipelined bursts bigger than the session's input buffer (about 4 KiB)
arriving in one TLS record while the session waits for something else
(the smarthost's reply, the auth worker): the replies still come, in
order, and the daemon does not spin.

The wait for the smarthost is made long enough (a slow greeting) for the
whole burst to be buffered behind the MAIL command.
"""

import ssl
import time

from harness import check, plain_response
from smarthost import (SENDER, USER, message, only_message, relay_config,
                       send_data, split_tagged)

pytest_plugins = ["smarthost"]

BURST = 1000        # NOOPs: 6000 octets, more than the input buffer


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / 100.0   # utime + stime, ticks


def test_burst_behind_mail_while_the_smarthost_is_slow(smarthosts,
                                                       authrelay):
    sh = smarthosts(delays={"greeting": 0.5})
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    cpu0 = cpu_seconds(d.net_pid)
    c.send(f"MAIL FROM:<{SENDER}>\r\n" + "NOOP\r\n" * BURST)
    check(c.read_reply(timeout=10), 250, "2.1.0", what="MAIL")
    for i in range(BURST):
        check(c.read_reply(timeout=10), 250, what=f"NOOP {i}")
    cpu = cpu_seconds(d.net_pid) - cpu0
    c.expect("RCPT TO:<bob@example.net>", 250)
    c.expect("DATA", 354)
    msg = message()
    check(send_data(c, msg), 250, "2.0.0", what="end of data")
    c.quit()
    assert split_tagged(only_message(sh).data)[1] == msg
    assert cpu < 0.4, f"the daemon used {cpu:.2f} s of CPU while waiting " \
        f"0.5 s for the smarthost: it spins"


def test_burst_behind_auth_is_answered(authrelay):
    d = authrelay()
    c = d.session()
    c.send("AUTH PLAIN " + plain_response(USER, "Al1ce-secret") + "\r\n" +
           "NOOP\r\n" * BURST)
    check(c.read_reply(timeout=10), 235, "2.7.0", what="AUTH")
    for i in range(BURST):
        check(c.read_reply(timeout=10), 250, what=f"NOOP {i}")
    c.quit()


def test_ten_pipelined_transactions_on_one_session(smarthosts, authrelay):
    """An RFC 2920 client: each MAIL, RCPT, DATA group in one write, then
    the message and its end in one write, ten times: ten messages, each
    reply in its place, one relay connection."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    msgs = []
    for i in range(10):
        msg = message(b"message %d\r\n" % i + b"filler line\r\n" * 40,
                      subject=f"burst {i}")
        msgs.append(msg)
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<bob@example.net>\r\n"
               "DATA\r\n")
        check(c.read_reply(), 250, what=f"MAIL {i}")
        check(c.read_reply(), 250, what=f"RCPT {i}")
        check(c.read_reply(), 354, what=f"DATA {i}")
        c.send(msg + b".\r\n")
        check(c.read_reply(), 250, "2.0.0", what=f"end of data {i}")
    c.quit()
    assert [split_tagged(t.data)[1] for t in sh.messages] == msgs
    assert sh.connections == 1


def test_client_that_does_not_read_its_replies_does_not_spin(authrelay):
    """Before AUTH: a TLS client sends NOOPs and never reads the replies.
    Once its output is full the session stops; it must then sit idle (no
    CPU), and other clients on every thread are still served."""
    d = authrelay()
    c = d.session()
    c.sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 5
    data = b"NOOP\r\n" * 2000
    while time.monotonic() < deadline and sent < 2000000:
        try:
            sent += c.sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError):
            time.sleep(0.05)
            try:
                sent += c.sock.send(data)
            except (BlockingIOError, ssl.SSLWantWriteError):
                break
    time.sleep(0.5)
    cpu0 = cpu_seconds(d.net_pid)
    time.sleep(1.0)
    cpu = cpu_seconds(d.net_pid) - cpu0
    others = [d.connect() for _ in range(4)]    # spread over the threads
    for o in others:
        o.ehlo()
        o.quit()
    c.close()
    assert cpu < 0.3, f"the daemon used {cpu:.2f} s of CPU in 1 s with one " \
        f"client that does not read: it spins"
