#!/usr/bin/python3
"""Demo smarthost: an SMTP server on 127.0.0.1 that keeps every message it
accepts as a file in a folder (one .eml per message, raw bytes as
received, envelope in a .env file beside it)."""
import argparse
import asyncio
import os
import time

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.folder, "%d-%04d" % (time.time(), self.count))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".env", "w") as f:
            f.write("MAIL FROM:<%s>\n" % envelope.mail_from)
            for r in envelope.rcpt_tos:
                f.write("RCPT TO:<%s>\n" % r)
        return "250 2.0.0 Ok: kept as %s" % os.path.basename(base)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--folder", required=True)
    a = ap.parse_args()
    os.makedirs(a.folder, exist_ok=True)
    c = Controller(Keep(a.folder), hostname="127.0.0.1", port=a.port)
    c.start()
    print("sink: 127.0.0.1:%d, mail kept in %s" % (a.port, a.folder), flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


if __name__ == "__main__":
    main()
