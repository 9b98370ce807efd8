#!/usr/bin/env python3
"""Probe for the event-loop stall found while benchmarking (RESULTS.md,
"Findings"): a TLS record that carries more than the daemon's input
window (SESSION_INPUT_BUF, 4352 octets) while the session waits for
something else (an auth worker, the smarthost) leaves decrypted octets in
OpenSSL with nowhere to put them; conn_read() then re-arms the
connection's defer source on every turn without progress, and sd-event,
which always dispatches the oldest pending defer first, never runs the
younger sources of that thread again (the worker's reply, the relay
connection, accept, timers). The thread spins at 100% CPU and serves no
one; SIGTERM is not acted on either.

Fixed in bf4d934 ("conn: never re-arm for TLS data already decrypted
while the input buffer is full"); kept as a regression check (run.sh
runs it against its main daemon at the end).

usage: stall_probe.py PORT [auth|mail] [USER PASSWORD]
  auth  STARTTLS, then "AUTH PLAIN ..." and 15000 octets of NOOPs in one
        write (before authentication: the credentials need not be valid;
        the default user is a new name each time, so the failure_delay,
        which doubles per failure of one address and login, stays at its
        first value)
  mail  AUTH first, then "MAIL FROM" and the NOOPs in one write

Passes (exit 0) when the reply to AUTH or MAIL comes, then the 2500 NOOP
replies, and a new connection still gets a greeting. Exit 1 on a stall
(no reply within 10 s, or the NOOPs not answered), 2 on other errors.
Bounded: every socket operation has a timeout.
"""

import base64
import os
import socket
import ssl
import sys
import time


def reply(f):
    lines = []
    for _ in range(100):
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        lines.append(line)
        if line[3:4] != b"-":
            return lines
    raise ValueError("reply too long")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    port = int(sys.argv[1])
    mode = sys.argv[2] if len(sys.argv) > 2 else "auth"
    if mode not in ("auth", "mail"):
        print(__doc__)
        return 2
    if len(sys.argv) > 3:
        user = sys.argv[3]
    else:
        user = "probe-%d-%d" % (os.getpid(), time.time())
    password = sys.argv[4] if len(sys.argv) > 4 else "wrong-password"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    reply(f)
    s.sendall(b"EHLO probe.example\r\n")
    reply(f)
    s.sendall(b"STARTTLS\r\n")
    reply(f)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = ctx.wrap_socket(s, server_hostname="localhost")
    tf = t.makefile("rb")
    t.sendall(b"EHLO probe.example\r\n")
    reply(tf)
    cred = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
    junk = b"NOOP\r\n" * 2500   # 15000 octets: one TLS record
    if mode == "auth":
        t.sendall(b"AUTH PLAIN " + cred + b"\r\n" + junk)
    else:
        t.sendall(b"AUTH PLAIN " + cred + b"\r\n")
        r = reply(tf)
        if not r[0].startswith(b"235"):
            print("AUTH failed:", r[0])
            return 2
        t.sendall(b"MAIL FROM:<%s@example.com>\r\n" % user.encode() + junk)
    t0 = time.monotonic()
    try:
        r = reply(tf)
    except (socket.timeout, TimeoutError):
        print("STALL: no reply within %.1f s" % (time.monotonic() - t0))
        return 1
    print("reply after %.3f s: %r" % (time.monotonic() - t0, r[0]))
    t1 = time.monotonic()
    n = 0
    try:
        for n in range(1, 2501):
            r = reply(tf)
            if not r[0].startswith(b"250"):
                print("NOOP %d answered %r" % (n, r[0]))
                return 2
    except (socket.timeout, TimeoutError):
        print("STALL: %d of 2500 NOOPs answered, then nothing for 10 s"
              % (n - 1))
        return 1
    print("2500 NOOPs answered in %.3f s" % (time.monotonic() - t1))
    t.close()
    try:
        s2 = socket.create_connection(("127.0.0.1", port), timeout=5)
        g = reply(s2.makefile("rb"))
        s2.close()
    except (OSError, EOFError) as e:
        print("STALL: no greeting on a new connection (%s)" % e)
        return 1
    print("new connection greeted: %r" % g[0].strip())
    return 0

if __name__ == "__main__":
    try:
        rc = main()
    except (socket.timeout, TimeoutError):
        print("STALL: timeout before the probe was sent or while reading")
        rc = 1
    except (OSError, EOFError, ValueError) as e:
        print("error: %s" % e)
        rc = 2
    sys.exit(rc)
