#!/usr/bin/env python3
"""A deliberately slow smarthost, to reproduce finding 5 of RESULTS.md (a
session hangs at the next message after a large one when the relay's
data_full flag is left set).

It answers 250 to everything, 354 to DATA, reads the message in 32 KiB
pieces with a 0.5 ms pause after each (about 40-60 MB/s: slower than the
client, so the daemon's relay buffer keeps filling up and draining) and
answers 250 after the end of data. One thread per connection; it exits
after LIFETIME seconds (default 300). No TLS, no AUTH, no XCLIENT.

usage: slow_smarthost.py PORT [LIFETIME]

Reproduction (a daemon whose [relay] smarthost is 127.0.0.1:PORT, tls =
none; loadgen from this directory):
  for i in $(seq 30); do
    loadgen -p DAEMON_PORT -c 1 -d 4 -m 0 -s 2000000 -u USER -w PASS \\
      -t 3 -G 15 -q | grep -q 'errors=0 ' || { echo "stalled, run $i"; break; }
  done
A run that reports timeout:DOT is the hang; the daemon's session then sits
in DATA with the client not being read (ss: the client socket's Recv-Q
grows, the smarthost socket's Send-Q is 0). In our runs: after 1 to 14
runs of about 75 messages each.
"""

import socket
import sys
import threading
import time


def serve(c):
    c.settimeout(30)
    buf = b""

    def line():
        nonlocal buf
        while b"\n" not in buf:
            d = c.recv(65536)
            if not d:
                raise EOFError
            buf += d
        ln, buf = buf.split(b"\n", 1)
        return ln

    try:
        c.sendall(b"220 slow.example ESMTP\r\n")
        for _ in range(1000000):
            cmd = line().upper()
            if cmd.startswith(b"EHLO"):
                c.sendall(b"250-slow.example\r\n250 8BITMIME\r\n")
            elif cmd.startswith(b"DATA"):
                c.sendall(b"354 go ahead\r\n")
                t = b"\r\n" + buf
                while b"\r\n.\r\n" not in t:
                    t = t[-8:]
                    d = c.recv(32768)
                    if not d:
                        raise EOFError
                    t += d
                    time.sleep(0.0005)
                buf = t[t.index(b"\r\n.\r\n") + 5:]
                c.sendall(b"250 2.0.0 Ok\r\n")
            elif cmd.startswith(b"QUIT"):
                c.sendall(b"221 2.0.0 Bye\r\n")
                break
            else:
                c.sendall(b"250 2.0.0 Ok\r\n")
    except (OSError, EOFError):
        pass
    c.close()


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    port = int(sys.argv[1])
    lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 300.0
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    s.settimeout(1)
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
