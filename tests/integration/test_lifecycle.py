"""Start, readiness, logging and stop (SPEC.md "Programs and files")."""

import re
import signal
import socket
import time

from harness import ConnectionClosed, check


def test_ready_and_clean_stop(authrelay):
    d = authrelay()
    assert d.notify.seen("READY=1")
    d.signal(signal.SIGTERM)
    assert d.wait_exit(15) == 0, f"exit status {d.proc.returncode}"
    d.notify.drain(0.2)
    assert d.notify.seen("STOPPING=1"), \
        f"no STOPPING=1 in sd_notify messages: {d.notify.messages}"


def greeted(port):
    """Does a new connection to port get a 220 greeting within 1.5 s?"""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return False
    try:
        s.settimeout(1.5)
        data = s.recv(100)
    except OSError:
        return False
    finally:
        s.close()
    return data.startswith(b"220")


def test_sigterm_lets_sessions_finish(authrelay):
    """SIGTERM: no new sessions; idle sessions are closed (421 or just
    closed); a session with a transaction in progress goes on until it
    ends; then exit 0."""
    d = authrelay(config={"server": {"shutdown_timeout": "10s"}})
    idle = d.authed()
    busy = d.authed()
    try:
        busy.expect("MAIL FROM:<alice@example.com>", 250, "2.1.0")
        busy.expect("RCPT TO:<bob@example.net>", 250, "2.1.5")
        d.signal(signal.SIGTERM)
        time.sleep(0.5)
        assert not greeted(d.starttls_port), "new session served after SIGTERM"
        try:
            r = idle.read_reply(timeout=5)
        except ConnectionClosed:
            pass
        else:
            check(r, 421, None, "idle session at SIGTERM")
            idle.assert_closed()
        # The transaction in progress goes on.
        busy.expect("RCPT TO:<carol@example.net>", 250, "2.1.5")
        check(busy.cmd("DATA"), 354, None, "DATA")
        busy.send(b"From: <alice@example.com>\r\nSubject: shutdown\r\n\r\n"
                  b"hello\r\n.\r\n")
        check(busy.read_reply(), 250, "2.0.0", "end of DATA")
    finally:
        idle.close()
        busy.close()
    assert d.wait_exit(10) == 0, f"exit status {d.proc.returncode}"


def test_shutdown_timeout_bounds_the_wait(authrelay):
    d = authrelay(config={"server": {"shutdown_timeout": "1s"}})
    c = d.session()
    try:
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.wait_exit(10)
        waited = time.monotonic() - t0
        assert rc == 0, f"exit status {rc}"
        assert waited < 6, f"exited {waited:.1f} s after SIGTERM, bound 1 s"
    finally:
        c.close()


def test_log_lines_on_stderr(authrelay):
    """Without systemd: one line per event, "authrelay[PID]: LEVEL: msg",
    PID the supervisor's (start, reload) or the network process's."""
    d = authrelay()
    with d.session() as c:
        check(c.auth_plain("alice", "wrong"), 535, "5.7.8")
    time.sleep(0.3)
    lines = [l for l in d.log().splitlines() if l.startswith("authrelay[")]
    assert lines, f"no log line on stderr:\n{d.log()}"
    pat = re.compile(r"^authrelay\[(\d+)\]: "
                     r"(error|warning|notice|info|debug): \S")
    for line in lines:
        m = pat.match(line)
        assert m, f"log line not in the 'authrelay[PID]: LEVEL: msg' " \
                  f"form: {line!r}"
        assert int(m.group(1)) in (d.pid, d.net_pid), \
            f"PID is neither the supervisor's nor the network " \
            f"process's: {line!r}"


def test_many_sessions_at_once(authrelay):
    """A few dozen concurrent sessions on two threads, all served."""
    d = authrelay()
    conns = []
    try:
        for _ in range(40):
            conns.append(d.connect())
        for c in conns:
            c.send(b"EHLO x\r\n")
        for c in conns:
            check(c.read_reply(), 250)
        for c in conns:
            c.expect("QUIT", 221, "2.0.0")
    finally:
        for c in conns:
            c.close()


def wait_notify_sequence(d, start, sequence, timeout=10):
    """The sd_notify messages after index start contain the assignments
    of sequence in that order."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d.notify.drain(0.1)
        flat = [a for m in d.notify.messages[start:] for a in m]
        i = 0
        for a in flat:
            if i < len(sequence) and a == sequence[i]:
                i += 1
        if i == len(sequence):
            return True
    return False


def test_sighup_reloads_config_for_new_sessions(authrelay):
    d = authrelay()
    old = d.connect()
    try:
        assert "relay.test.example" in old.greeting.text, old.greeting
        d.conf_path.write_text(d.conf_text.replace(
            "hostname = relay.test.example",
            "hostname = reloaded.test.example"))
        start = len(d.notify.messages)
        d.signal(signal.SIGHUP)
        assert wait_notify_sequence(d, start, ["RELOADING=1", "READY=1"]), \
            f"no RELOADING=1 then READY=1: {d.notify.messages[start:]}"
        with d.connect() as c:
            assert "reloaded.test.example" in c.greeting.text, c.greeting
        # The session from before the reload keeps the old settings.
        r = old.ehlo()
        assert r.lines[0].startswith("relay.test.example"), r
    finally:
        old.close()


def test_sighup_with_a_broken_config_keeps_the_old_one(authrelay):
    d = authrelay()
    d.conf_path.write_text(d.conf_text + "\n[server]\nfrobnicate = 1\n")
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and f"{d.conf_path}:" not in d.log():
        time.sleep(0.1)
    assert f"{d.conf_path}:" in d.log(), \
        "the reload error (FILE:LINE) was not logged"
    assert d.alive(), "the daemon died on a broken config at SIGHUP"
    with d.connect() as c:
        assert "relay.test.example" in c.greeting.text, c.greeting
        c.ehlo()
        c.starttls(d.tls_context)
        c.ehlo()
        check(c.auth_plain("alice", "Al1ce-secret"), 235, "2.7.0")


def test_watchdog_pings_while_every_loop_turns(authrelay):
    """With WatchdogSec= (WATCHDOG_USEC in the environment, as systemd
    sets it) the daemon sends WATCHDOG=1 at about half the interval, and
    only while every serving thread's loop turns."""
    d = authrelay(env={"WATCHDOG_USEC": "1000000"})
    d.notify.drain(2.5)
    pings = sum(1 for m in d.notify.messages if "WATCHDOG=1" in m)
    assert pings >= 3, f"{pings} WATCHDOG=1 in 2.5 s: {d.notify.messages}"
    # Busy sessions do not stop it.
    with d.session() as c:
        c.expect("NOOP", 250)
    d.notify.drain(1.2)
    assert sum(1 for m in d.notify.messages if "WATCHDOG=1" in m) > pings


def test_no_watchdog_without_watchdogsec(authrelay):
    d = authrelay()
    d.notify.drain(1.5)
    assert not any("WATCHDOG=1" in m for m in d.notify.messages), \
        d.notify.messages
