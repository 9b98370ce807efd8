#!/usr/bin/env python3
"""Reply texts are ASCII: a check over the daemon's C sources.

RFC 5321 §4.2: the text of a reply is printable US-ASCII (textstring =
1*(%d09 / %d32-126)); RFC 6531 does not change that for replies. Every
reply the daemon sends is built from string literals in proxy/*.c, so:

  1. every string literal in proxy/*.c (comments are not literals) holds
     only ASCII octets, by its source bytes and by its escapes;
  2. every reply literal (adjacent literals joined as the compiler joins
     them, starting with a reply code "ddd " or "ddd-") holds only HT,
     printable ASCII and at most a final CR LF;
  3. at least MIN_REPLIES reply literals were found, so that a change in
     the sources (or in this parser) cannot make the check pass vacuously.

    reply_ascii.py [PROXY-SOURCE-DIR]

The directory defaults to $srcdir/../../proxy (make check sets srcdir).
Prints "file:line: what: got X, want Y" for each problem; exit 0 or 1.
"""

import os
import re
import sys
from pathlib import Path

MIN_REPLIES = 40
REPLY_CODE = re.compile(rb"^[2-5][0-9][0-9]([ -]|$)")
SIMPLE_ESCAPES = {b"n": 10, b"t": 9, b"r": 13, b"0": 0, b"\\": 92,
                  b"'": 39, b'"': 34, b"?": 63, b"a": 7, b"b": 8,
                  b"f": 12, b"v": 11}


def decode_literal(body):
    """The octets a C string literal's body (between the quotes) stands
    for, escapes resolved."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i:i + 1]
        if c != b"\\":
            out += c
            i += 1
            continue
        e = body[i + 1:i + 2]
        if e == b"x":
            m = re.match(rb"[0-9a-fA-F]+", body[i + 2:])
            out.append(int(m.group(0), 16) & 0xff if m else 0)
            i += 2 + (len(m.group(0)) if m else 0)
        elif e in b"01234567" and e:
            m = re.match(rb"[0-7]{1,3}", body[i + 1:])
            out.append(int(m.group(0), 8) & 0xff)
            i += 1 + len(m.group(0))
        else:
            out.append(SIMPLE_ESCAPES.get(e, e[0] if e else 92))
            i += 2
    return bytes(out)


def literals(src):
    """Yield (line, [literal bodies]) for each run of adjacent string
    literals (only whitespace, comments or preprocessor line breaks
    between them), comments and character constants skipped."""
    i, line, n = 0, 1, len(src)
    run, run_line = [], 0
    while i < n:
        c = src[i:i + 1]
        if src.startswith(b"/*", i):
            j = src.find(b"*/", i + 2)
            j = n if j < 0 else j + 2
            line += src.count(b"\n", i, j)
            i = j
            continue
        if src.startswith(b"//", i):
            j = src.find(b"\n", i)
            i = n if j < 0 else j
            continue
        if c == b'"' or c == b"'":
            j = i + 1
            while j < n and src[j:j + 1] != c:
                j += 2 if src[j:j + 1] == b"\\" else 1
            body = src[i + 1:j]
            if c == b'"':
                if not run:
                    run_line = line
                run.append(body)
            line += body.count(b"\n")
            i = j + 1
            continue
        if c in (b" ", b"\t", b"\n", b"\r") or src.startswith(b"\\\n", i):
            line += c == b"\n"
            i += 1
            continue
        if run:
            yield run_line, run
            run = []
        i += 1
    if run:
        yield run_line, run


def check_dir(proxy_dir):
    problems, replies, files = [], 0, 0
    for path in sorted(Path(proxy_dir).glob("*.c")):
        files += 1
        src = path.read_bytes()
        for line, run in literals(src):
            octets = b"".join(decode_literal(b) for b in run)
            for body in run:
                raw_bad = [b for b in body if b >= 0x80]
                if raw_bad or any(b >= 0x80 for b in decode_literal(body)):
                    problems.append(
                        f"{path.name}:{line}: literal {body[:60]!r}: got a "
                        f"non-ASCII octet, want ASCII only")
            if not REPLY_CODE.match(octets):
                continue
            replies += 1
            text = octets[:-2] if octets.endswith(b"\r\n") else octets
            bad = [b for b in text if not (b == 9 or 32 <= b <= 126)]
            if bad:
                problems.append(
                    f"{path.name}:{line}: reply {octets[:60]!r}: got octet "
                    f"0x{bad[0]:02X}, want HT or printable ASCII "
                    f"(RFC 5321 §4.2)")
    if replies < MIN_REPLIES:
        problems.append(f"{proxy_dir}: got {replies} reply literals in "
                        f"{files} files, want at least {MIN_REPLIES}")
    return problems, replies, files


def main():
    if len(sys.argv) > 1:
        proxy_dir = sys.argv[1]
    else:
        proxy_dir = os.path.join(os.environ.get("srcdir", "."), "..", "..",
                                 "proxy")
    problems, replies, files = check_dir(proxy_dir)
    for p in problems:
        print(p)
    print(f"reply_ascii: {replies} reply literals in {files} files, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
