"""A test smarthost of ours for the relay tests, and the glue the
test_relay_*.py files share.

TestSmarthost is a threaded ESMTP server on 127.0.0.1 (a free port) that
records every octet it receives, exactly as received: per connection the
whole transcript (after TLS decryption once TLS is up), the command lines,
and per DATA the raw octets between the 354 and the end of data, before
any unstuffing. It ends a message only at CR LF "." CR LF (RFC 5321
§4.1.1.4), as a strict server does; tests that care about laxer servers
look at the raw octets themselves.

Behaviours are switchable, also while it runs (plain attributes, read at
each use):

  starttls      a certificate kind ("valid", "wrong-name", "self-signed")
                or None: offer STARTTLS
  implicit_tls  a certificate kind or None: TLS from the first octet
  auth          (user, password) or None: offer AUTH (auth_mechs), after
                TLS only when auth_requires_tls; MAIL needs it
  xclient       offer XCLIENT (Postfix XCLIENT_README); recorded
  token_check   callable(mailbox, token) -> bool, or None: with XOAUTH2
                or OAUTHBEARER in auth_mechs, take those (and nothing
                else: auth may stay None) like Gmail and Exchange Online:
                a good token gets 235, any other the base64 JSON error
                challenge (334), then 535 after the client's dummy reply
  reject_rcpt   {address: reply line} for RCPT (address lower-case)
  faults        {stage: action}: instead of the normal reply, with stage
                one of greeting EHLO STARTTLS AUTH XCLIENT MAIL RCPT DATA
                DOT RSET NOOP QUIT and action bytes (sent as they are),
                CLOSE (FIN, no reply), RESET (RST, no reply), a tuple
                of those (in turn, e.g. (b"250 no CRLF", CLOSE)), or a
                callable(session, line) returning one of those or None
                (normal reply)
  after         {stage: bytes | CLOSE | RESET}: right after the normal
                reply (bytes in the same send: a reply before the command)
  delays        {stage: seconds} before replying
  close_after_data_bytes  during DATA, once that many octets arrived,
                close (close_mode "fin" or "rst") without replying
  data_without_rcpt  answer DATA 354 (and read data) in a transaction
                without an accepted recipient, where RFC 2920 §3.1 wants
                554: a smarthost that breaks that rule

Every wait is bounded: sockets time out after `timeout` seconds, and
stop() joins its threads with a deadline.
"""

import base64
import hashlib
import json
import os
import re
import select
import socket
import ssl
import struct
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness import free_port

CRLF = b"\r\n"
END_OF_DATA = b"\r\n.\r\n"

class _Sentinel:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


CLOSE = _Sentinel("CLOSE")
RESET = _Sentinel("RESET")

STAGES = ("greeting", "EHLO", "STARTTLS", "AUTH", "XCLIENT", "MAIL",
          "RCPT", "DATA", "DOT", "RSET", "NOOP", "QUIT")

# Longest line we buffer before giving up on a peer (bounds memory).
LINE_LIMIT = 1 << 20


# --------------------------------------------------------------------------
# Certificates for the smarthost

def _openssl(args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}:\n{r.stderr}")


_cert_lock = threading.Lock()


def smarthost_cert(pki, kind):
    """(cert, key) paths for a smarthost certificate of this kind:

    valid        the test CA's RSA certificate (localhost, IP:127.0.0.1)
    wrong-name   signed by the test CA, for DNS:wrong.example only
    self-signed  right names (localhost, IP:127.0.0.1), no CA
    """
    if kind == "valid":
        return pki.rsa_cert, pki.rsa_key
    d = Path(pki.dir)
    cert, key = d / f"sh-{kind}.crt", d / f"sh-{kind}.key"
    with _cert_lock:
        if cert.exists() and key.exists():
            return cert, key
        if kind == "wrong-name":
            ext = d / "sh-wrong.ext"
            ext.write_text(textwrap.dedent("""\
                basicConstraints = critical, CA:FALSE
                keyUsage = critical, digitalSignature, keyEncipherment
                extendedKeyUsage = serverAuth
                subjectAltName = DNS:wrong.example
                """))
            _openssl(["req", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                      key.name, "-out", "sh-wrong.csr", "-subj",
                      "/CN=wrong.example"], d)
            _openssl(["x509", "-req", "-in", "sh-wrong.csr", "-CA",
                      "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                      "-days", "3", "-extfile", ext.name, "-out",
                      cert.name], d)
        elif kind == "self-signed":
            _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                      key.name, "-out", cert.name, "-days", "3", "-subj",
                      "/CN=localhost", "-addext",
                      "subjectAltName=DNS:localhost,IP:127.0.0.1"], d)
        else:
            raise ValueError(f"unknown certificate kind {kind!r}")
        key.chmod(0o600)
    return cert, key


def server_context(pki, kind):
    cert, key = smarthost_cert(pki, kind)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


# --------------------------------------------------------------------------
# What was received

class Transaction:
    """One MAIL transaction as the smarthost saw it."""

    def __init__(self, mail, tls, auth_user):
        self.mail = mail            # the MAIL command line (no CRLF)
        self.rcpts = []             # accepted RCPT command lines
        self.rcpt_lines = []        # every RCPT command line
        self.data_started = False   # 354 sent
        self.data_raw = bytearray()  # every octet after the 354 (raw)
        self.data = None            # complete: the message, raw, up to
        #                             and including the CRLF before "."
        self.complete = False       # the end of data arrived
        self.tls = tls
        self.auth_user = auth_user

    def __repr__(self):
        return (f"<Transaction {self.mail!r} rcpts={self.rcpt_lines!r} "
                f"data={len(self.data_raw)} octets complete="
                f"{self.complete}>")


class Session:
    """One connection to the smarthost."""

    def __init__(self, n, peer):
        self.n = n
        self.peer = peer
        self.raw = bytearray()      # everything received (TLS decrypted)
        self.reads = []             # each recv()'s octets, in order
        self.commands = []          # (line without CRLF, over TLS?)
        self.tls = False
        self.tls_version = None
        self.tls_error = None       # the handshake failed: why
        self.discarded_at_starttls = b""
        self.auth = []              # (mechanism, user, ok, over TLS?)
        self.auth_user = None
        self.xclient = []           # XCLIENT lines
        self.ehlo_count = 0
        self.transactions = []
        self.closed = threading.Event()

    def verbs(self):
        return [line.split(b" ", 1)[0].split(b":", 1)[0].upper()
                for line, _ in self.commands]

    def __repr__(self):
        return (f"<Session {self.n} tls={self.tls} commands="
                f"{[c for c, _ in self.commands]!r} "
                f"transactions={self.transactions!r}>")


class _Closed(Exception):
    pass


# --------------------------------------------------------------------------
# The server

class TestSmarthost:
    __test__ = False    # not a pytest test class

    def __init__(self, pki=None, *, port=None, name="smarthost.test",
                 starttls=None, implicit_tls=None, auth=None,
                 auth_mechs=("PLAIN", "LOGIN"), auth_requires_tls=True,
                 xclient=False, dsn=False, reject_rcpt=None, faults=None,
                 after=None, delays=None, close_after_data_bytes=None,
                 close_mode="fin", timeout=30.0, token_check=None,
                 pipelining=True, data_without_rcpt=False):
        self.pki = pki
        self.port = port
        self.name = name
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.auth_mechs = auth_mechs
        self.auth_requires_tls = auth_requires_tls
        self.xclient = xclient
        self.dsn = dsn
        self.reject_rcpt = {k.lower(): v
                            for k, v in (reject_rcpt or {}).items()}
        self.faults = dict(faults or {})
        self.after = dict(after or {})
        self.delays = dict(delays or {})
        self.close_after_data_bytes = close_after_data_bytes
        self.close_mode = close_mode
        self.timeout = timeout
        self.token_check = token_check
        self.pipelining = pipelining
        self.data_without_rcpt = data_without_rcpt

        self.sessions = []
        self.connections = 0
        self.lock = threading.Lock()
        self._listener = None
        self._thread = None
        self._stop = threading.Event()
        self._conns = {}            # Session -> socket
        self._workers = []
        self._queued = 0
        self._ctx_cache = {}

    # -- life ------------------------------------------------------------

    def start(self):
        if self.port is None:
            self.port = free_port()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self._listener = s
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop,
                                        name=f"smarthost-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        """Stop listening and drop every connection (like a kill: no
        reply, no QUIT)."""
        self._stop.set()
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
            self._listener = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self.lock:
            socks = list(self._conns.values())
        for s in socks:
            _hard_close(s, rst=False)
        deadline = time.monotonic() + timeout
        for t in list(self._workers):
            t.join(max(0.0, deadline - time.monotonic()))
        self._workers = [t for t in self._workers if t.is_alive()]

    def auth_offered(self):
        return self.auth is not None or self.token_check is not None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    # -- queries ---------------------------------------------------------

    def all_transactions(self):
        with self.lock:
            return [t for s in self.sessions for t in s.transactions]

    @property
    def messages(self):
        """Complete messages (the end of data arrived), in order."""
        return [t for t in self.all_transactions() if t.complete]

    def commands(self):
        with self.lock:
            return [(c, tls) for s in self.sessions for c, tls in s.commands]

    def command_verbs(self):
        return [c.split(b" ", 1)[0].split(b":", 1)[0].upper()
                for c, _ in self.commands()]

    def wait_for(self, predicate, timeout=10.0, interval=0.01):
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def wait_idle(self, timeout=10.0):
        """Every connection so far has ended."""
        return self.wait_for(lambda: all(s.closed.is_set()
                                         for s in list(self.sessions)),
                             timeout)

    # -- plumbing --------------------------------------------------------

    def _context(self, kind):
        if kind not in self._ctx_cache:
            self._ctx_cache[kind] = server_context(self.pki, kind)
        return self._ctx_cache[kind]

    def _accept_loop(self):
        listener = self._listener
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([listener], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                sock, peer = listener.accept()
            except OSError:
                continue
            with self.lock:
                self.connections += 1
                sess = Session(self.connections, peer)
                self.sessions.append(sess)
                self._conns[sess] = sock
            t = threading.Thread(target=self._serve, args=(sock, sess),
                                 name=f"smarthost-{self.port}-{sess.n}",
                                 daemon=True)
            self._workers.append(t)
            t.start()

    def _serve(self, sock, sess):
        conn = _Conn(self, sock, sess)
        try:
            conn.run()
        except (_Closed, OSError, ssl.SSLError, ValueError):
            pass
        finally:
            _hard_close(conn.sock, rst=conn.rst)
            with self.lock:
                self._conns.pop(sess, None)
            sess.closed.set()


def _hard_close(sock, rst=False):
    try:
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Conn:
    """The server side of one connection."""

    def __init__(self, server, sock, sess):
        self.srv = server
        self.sock = sock
        self.sess = sess
        self.buf = bytearray()
        self.rst = False
        self.ehlo = False
        self.authed = None
        self.txn = None
        sock.settimeout(server.timeout)

    # -- I/O -------------------------------------------------------------

    def recv(self):
        if self.srv._stop.is_set():
            raise _Closed()
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise _Closed() from None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError,
                ConnectionResetError):
            raise _Closed() from None
        if not data:
            raise _Closed()
        self.sess.raw += data
        self.sess.reads.append(bytes(data))
        self.buf += data
        return data

    def readline(self):
        """A command line up to LF (CR LF or bare LF), without it."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                return line
            if len(self.buf) > LINE_LIMIT:
                raise _Closed()
            self.recv()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError):
            raise _Closed() from None

    def end(self, how):
        self.rst = how is RESET
        raise _Closed()

    def reply(self, stage, normal, line=b""):
        """Send the normal reply for stage, unless a fault says
        otherwise. Returns True if the normal reply went out."""
        srv = self.srv
        delay = srv.delays.get(stage)
        if delay:
            time.sleep(delay)
        action = srv.faults.get(stage)
        if callable(action):
            action = action(self.sess, line)
        if action in (CLOSE, RESET):
            self.end(action)
        if isinstance(action, tuple):
            for a in action:
                if a in (CLOSE, RESET):
                    self.end(a)
                self.send(a)
            return False
        if isinstance(action, (bytes, bytearray, str)):
            self.send(action)
            return False
        if isinstance(normal, str):
            normal = normal.encode("utf-8")
        extra = srv.after.get(stage)
        if isinstance(extra, str):
            extra = extra.encode("utf-8")
        if isinstance(normal, (bytes, bytearray)) and extra is not None \
                and not isinstance(extra, (bytes, bytearray)):
            self.send(normal)
            self.end(extra)
        if isinstance(extra, (bytes, bytearray)):
            self.send(normal + extra)
        else:
            self.send(normal)
        return True

    # -- protocol --------------------------------------------------------

    def run(self):
        srv = self.srv
        if srv.implicit_tls is not None:
            self.start_tls(srv.implicit_tls)
        self.reply("greeting", f"220 {srv.name} ESMTP test smarthost\r\n")
        while True:
            line = self.readline()
            self.sess.commands.append((line, self.sess.tls))
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            handler = getattr(self, "cmd_" + verb.decode("ascii",
                                                         "replace"), None)
            if handler is None:
                self.reply("other", "502 5.5.2 Command not recognized\r\n")
                continue
            handler(line)

    def start_tls(self, kind):
        ctx = self.srv._context(kind)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.sess.tls_error = repr(e)
            raise _Closed() from None
        self.sess.tls = True
        self.sess.tls_version = self.sock.version()

    def cmd_EHLO(self, line):
        srv = self.srv
        self.sess.ehlo_count += 1
        self.ehlo = True
        self.txn = None
        kw = ["PIPELINING"] if srv.pipelining else []
        kw += ["SIZE 104857600", "8BITMIME", "ENHANCEDSTATUSCODES",
               "SMTPUTF8"]
        if srv.dsn:
            kw.append("DSN")
        if srv.starttls is not None and not self.sess.tls:
            kw.append("STARTTLS")
        if srv.auth_offered() and (self.sess.tls or
                                   not srv.auth_requires_tls):
            kw.append("AUTH " + " ".join(srv.auth_mechs))
        if srv.xclient:
            kw.append("XCLIENT NAME ADDR PROTO HELO LOGIN")
        lines = [srv.name] + kw
        text = "".join(f"250-{k}\r\n" for k in lines[:-1]) + \
            f"250 {lines[-1]}\r\n"
        self.reply("EHLO", text, line)

    cmd_HELO = cmd_EHLO

    def cmd_STARTTLS(self, line):
        srv = self.srv
        if srv.starttls is None or self.sess.tls:
            self.reply("STARTTLS", "502 5.5.1 STARTTLS not available\r\n",
                       line)
            return
        if not self.reply("STARTTLS", "220 2.0.0 Ready to start TLS\r\n",
                          line):
            return
        # RFC 3207 §4.2: what came pipelined behind STARTTLS is dropped.
        self.sess.discarded_at_starttls = bytes(self.buf)
        self.buf.clear()
        self.start_tls(srv.starttls)
        self.ehlo = False
        self.authed = None
        self.txn = None

    def cmd_AUTH(self, line):
        srv = self.srv
        parts = line.split(b" ")
        mech = parts[1].upper().decode("ascii", "replace") \
            if len(parts) > 1 else ""
        offered = srv.auth_offered() and (self.sess.tls or
                                          not srv.auth_requires_tls)
        if not offered or mech not in srv.auth_mechs:
            self.reply("AUTH", "504 5.5.4 Unrecognized authentication "
                               "type\r\n", line)
            return
        if self.authed is not None:
            self.reply("AUTH", "503 5.5.1 Already authenticated\r\n", line)
            return
        if mech in ("XOAUTH2", "OAUTHBEARER"):
            self.auth_token(mech, parts, line)
            return
        try:
            if mech == "PLAIN":
                resp = parts[2] if len(parts) > 2 else None
                if resp is None:
                    self.send(b"334 \r\n")
                    resp = self.readline()
                    self.sess.commands.append((resp, self.sess.tls))
                dec = base64.b64decode(resp, validate=True)
                _authz, user, password = dec.split(b"\0")
            else:
                if len(parts) > 2:
                    user = base64.b64decode(parts[2], validate=True)
                else:
                    self.send(b"334 VXNlcm5hbWU6\r\n")
                    r = self.readline()
                    self.sess.commands.append((r, self.sess.tls))
                    user = base64.b64decode(r, validate=True)
                self.send(b"334 UGFzc3dvcmQ6\r\n")
                r = self.readline()
                self.sess.commands.append((r, self.sess.tls))
                password = base64.b64decode(r, validate=True)
        except ValueError:
            self.reply("AUTH", "501 5.5.2 Bad authentication data\r\n", line)
            return
        user_s = user.decode("utf-8", "replace")
        ok = (user_s, password.decode("utf-8", "replace")) == \
            tuple(srv.auth)
        self.sess.auth.append((mech, user_s, ok, self.sess.tls))
        if ok:
            self.authed = user_s
            self.sess.auth_user = user_s
            self.reply("AUTH", "235 2.7.0 Authentication successful\r\n",
                       line)
        else:
            self.reply("AUTH", "535 5.7.8 Authentication credentials "
                               "invalid\r\n", line)

    # Google's XOAUTH2 (developers.google.com/gmail/imap/xoauth2-protocol)
    # and RFC 7628 OAUTHBEARER: the token is good only if the token
    # endpoint issued it, for this mailbox, and it has not expired.
    ERROR_CHALLENGE = base64.b64encode(json.dumps({
        "status": "401", "schemes": "Bearer",
        "scope": "https://mail.google.com/"}).encode()).decode()

    def auth_token(self, mech, parts, line):
        srv = self.srv
        if len(parts) > 2:
            resp = parts[2]
        else:
            self.send(b"334 \r\n")
            resp = self.readline()
            self.sess.commands.append((resp, self.sess.tls))
        user = token = None
        try:
            dec = base64.b64decode(resp, validate=True).decode("utf-8")
            if mech == "XOAUTH2":
                fields = dec.split("\x01")
                if fields[-2:] != ["", ""]:
                    raise ValueError("no final ^A^A")
                kv = dict(f.split("=", 1) for f in fields[:-2])
                user = kv["user"]
            else:
                gs2, _, rest = dec.partition(",\x01")
                head = gs2.split(",")
                if head[0] != "n" or not head[1].startswith("a="):
                    raise ValueError("gs2 header")
                user = head[1][2:].replace("=2C", ",").replace("=3D", "=")
                fields = rest.split("\x01")
                if fields[-2:] != ["", ""]:
                    raise ValueError("no final ^A^A")
                kv = dict(f.split("=", 1) for f in fields[:-2])
            scheme, _, token = kv["auth"].partition(" ")
            if scheme != "Bearer":
                raise ValueError("not Bearer")
        except (ValueError, KeyError, UnicodeDecodeError):
            self.reply("AUTH", "501 5.5.2 Bad authentication data\r\n",
                       line)
            return
        ok = srv.token_check is not None and srv.token_check(user, token)
        self.sess.auth.append((mech, user, ok, self.sess.tls))
        if ok:
            self.authed = user
            self.sess.auth_user = user
            self.reply("AUTH", "235 2.7.0 Authentication successful\r\n",
                       line)
            return
        self.send(f"334 {self.ERROR_CHALLENGE}\r\n")
        dummy = self.readline()
        self.sess.commands.append((dummy, self.sess.tls))
        self.reply("AUTH", "535 5.7.8 Username and Password not accepted"
                           "\r\n", line)

    def cmd_XCLIENT(self, line):
        if not self.srv.xclient:
            self.reply("XCLIENT", "502 5.5.1 XCLIENT not available\r\n",
                       line)
            return
        self.sess.xclient.append(line)
        if self.reply("XCLIENT", f"220 {self.srv.name} ESMTP test "
                                 "smarthost\r\n", line):
            # Postfix: the session starts over, greeting included; with
            # LOGIN= it counts as authenticated as that name (a second
            # AUTH would get 503 "already authenticated").
            self.ehlo = False
            login = None
            for word in line.split()[1:]:
                if word.upper().startswith(b"LOGIN="):
                    login = word[6:] or None
            self.authed = login
            self.txn = None

    def cmd_MAIL(self, line):
        srv = self.srv
        if not self.ehlo:
            self.reply("MAIL", "503 5.5.1 Send EHLO first\r\n", line)
            return
        if srv.auth_offered() and self.authed is None:
            self.reply("MAIL", "530 5.7.0 Authentication required\r\n",
                       line)
            return
        if self.txn is not None:
            self.reply("MAIL", "503 5.5.1 Nested MAIL command\r\n", line)
            return
        txn = Transaction(line, self.sess.tls, self.authed)
        with srv.lock:
            self.sess.transactions.append(txn)
        if self.reply("MAIL", "250 2.1.0 Ok\r\n", line):
            self.txn = txn

    def cmd_RCPT(self, line):
        if self.txn is None:
            self.reply("RCPT", "503 5.5.1 Need MAIL command\r\n", line)
            return
        self.txn.rcpt_lines.append(line)
        m = re.match(rb"(?i)RCPT TO:<([^>]*)>", line)
        addr = m.group(1).decode("utf-8", "replace").lower() if m else ""
        rejected = self.srv.reject_rcpt.get(addr)
        if rejected is not None:
            if isinstance(rejected, str):
                rejected = rejected.encode("utf-8")
            if not rejected.endswith(CRLF):
                rejected += CRLF
            self.reply("RCPT", rejected, line)
            return
        if self.reply("RCPT", "250 2.1.5 Ok\r\n", line):
            self.txn.rcpts.append(line)

    def cmd_DATA(self, line):
        txn = self.txn
        if txn is None or (not txn.rcpts and
                           not self.srv.data_without_rcpt):
            self.reply("DATA", "554 5.5.1 No valid recipients\r\n", line)
            return
        if not self.reply("DATA", "354 End data with <CR><LF>.<CR><LF>\r\n",
                          line):
            return
        txn.data_started = True
        self.read_data(txn)
        self.txn = None
        with self.srv.lock:
            self.srv._queued += 1
            n = self.srv._queued
        self.reply("DOT", f"250 2.0.0 Ok: queued as TEST{n:04d}\r\n")

    def read_data(self, txn):
        """Raw octets up to CR LF "." CR LF; the CR LF after the 354
        counts as the first CR LF (the message may be empty)."""
        srv = self.srv
        # What came pipelined behind DATA is data too.
        pending = bytes(self.buf)
        self.buf.clear()
        txn.data_raw += pending
        scan = 0
        while True:
            raw = txn.data_raw
            if raw[:3] == b".\r\n":
                content, used = 0, 3
            else:
                i = raw.find(END_OF_DATA, scan)
                content, used = (i + 2, i + 5) if i >= 0 else (None, None)
            if content is not None:
                txn.data = bytes(raw[:content])
                self.buf += raw[used:]
                del raw[used:]
                txn.complete = True
                return
            scan = max(0, len(raw) - 4)
            limit = srv.close_after_data_bytes
            if limit is not None and len(raw) >= limit:
                self.end(RESET if srv.close_mode == "rst" else CLOSE)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise _Closed() from None
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError,
                    ConnectionResetError):
                raise _Closed() from None
            if not data:
                raise _Closed()
            self.sess.raw += data
            raw += data

    def cmd_RSET(self, line):
        self.txn = None
        self.reply("RSET", "250 2.0.0 Ok\r\n", line)

    def cmd_NOOP(self, line):
        self.reply("NOOP", "250 2.0.0 Ok\r\n", line)

    def cmd_QUIT(self, line):
        self.reply("QUIT", "221 2.0.0 Bye\r\n", line)
        raise _Closed()


# --------------------------------------------------------------------------
# Pytest glue shared by the test_relay_*.py files

@pytest.fixture
def smarthosts(pki):
    """Factory: smarthosts(**behaviour) -> a started TestSmarthost,
    stopped at the end of the test (after the daemon, when the test asks
    for this fixture before `authrelay`)."""
    made = []

    def make(**kw):
        s = TestSmarthost(pki, **kw).start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def relay_config(*hosts, **relay):
    """Config overrides: [relay] smarthost = each of hosts (TestSmarthost,
    port number or "host:port"), plus the given [relay] keys; [policy]
    and [server] keys may come as policy={...}, server={...}."""
    policy = relay.pop("policy", None)
    server = relay.pop("server", None)
    entries = []
    for h in hosts:
        if isinstance(h, TestSmarthost):
            entries.append(h.address)
        elif isinstance(h, int):
            entries.append(f"127.0.0.1:{h}")
        else:
            entries.append(h)
    conf = {"relay": {"smarthost": entries, **relay}}
    if policy:
        conf["policy"] = policy
    if server:
        conf["server"] = server
    return conf


USER = "alice"
SENDER = "alice@example.com"


def message(body=b"Hello.\r\n", headers=None, sender=SENDER,
            to="bob@example.net", subject="relay test"):
    """A message as a client sends it (dot-stuffed by the caller where it
    matters), headers first."""
    if headers is None:
        headers = (f"From: Alice <{sender}>\r\n"
                   f"To: <{to}>\r\n"
                   f"Subject: {subject}\r\n"
                   "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
                   "Message-ID: <relay-test@example.com>\r\n").encode()
    return headers + b"\r\n" + body


def begin(c, rcpts=("bob@example.net",), sender=SENDER, mail_params=""):
    """MAIL and RCPTs (each 250 asserted), then DATA (354 asserted)."""
    c.expect(f"MAIL FROM:<{sender}>{mail_params}", 250)
    for r in rcpts:
        c.expect(f"RCPT TO:<{r}>", 250)
    c.expect("DATA", 354)


def send_data(c, msg, timeout=None):
    """The message octets (already stuffed, ending with CR LF) and the end
    of data; returns the reply."""
    assert msg.endswith(CRLF) or msg == b"", "message must end with CRLF"
    c.send(msg + b".\r\n")
    return c.read_reply(timeout)


def submit(c, msg, rcpts=("bob@example.net",), sender=SENDER,
           mail_params=""):
    begin(c, rcpts, sender, mail_params)
    return send_data(c, msg)


_RECEIVED = re.compile(
    rb"\AReceived: from (?P<helo>\S+) \(\[(?P<ip>[^\]]+)\]\)\r\n"
    rb"\tby (?P<by>\S+) \(authrelay\) with ESMTPSA id \S+\r\n"
    rb"\t\(version=(?P<version>\S+) cipher=(?P<cipher>\S+)\)\r\n"
    rb"\t\(Authenticated sender: (?P<user>[^)]*)\)"
    rb"(?:\r\n\tfor <(?P<for>[^>]*)>)?;\r\n"
    rb"\t(?P<date>[^\r\n]+)\r\n")


def split_tagged(data, user=USER, identity_header="X-Authenticated-User"):
    """The octets a smarthost got -> (Received match, the rest after our
    header lines). Asserts that our two headers, and nothing else, come
    first."""
    m = _RECEIVED.match(data)
    assert m, f"no Received header of ours at the top: {data[:600]!r}"
    assert m.group("user") == user.encode(), m.group(0)
    rest = data[m.end():]
    if identity_header:
        ours = f"{identity_header}: {user}\r\n".encode()
        assert rest.startswith(ours), \
            f"want {ours!r} right after Received, got {rest[:200]!r}"
        rest = rest[len(ours):]
    return m, rest


def only_message(sh):
    msgs = sh.messages
    assert len(msgs) == 1, f"want exactly one message at the smarthost, " \
        f"got {len(msgs)}: {sh.sessions!r}"
    return msgs[0]


def assert_nothing_delivered(sh, what=""):
    """No end of data ever reached the smarthost."""
    msgs = sh.messages
    assert msgs == [], f"{what}: the smarthost stored {len(msgs)} " \
        f"message(s): {msgs!r}"
    for s in list(sh.sessions):
        for t in s.transactions:
            assert END_OF_DATA not in b"\r\n" + bytes(t.data_raw), \
                f"{what}: an end of data reached the smarthost: {t!r}"


def bare_newlines(data):
    """Offsets of CR not followed by LF and LF not preceded by CR."""
    out = []
    for m in re.finditer(rb"\r(?!\n)|(?<!\r)\n", data):
        out.append(m.start())
    return out


def _inet_inodes():
    inodes = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    inodes.add(line.split()[9])
        except OSError:
            pass
    return inodes


def fd_count(pid):
    """Open fds of the daemon, its sockets to auth workers (unix sockets,
    made as workers are spawned and recycled) left out: listeners, client
    and relay connections, files, event loop fds."""
    unix = set()
    try:
        with open("/proc/net/unix") as fh:
            next(fh)
            for line in fh:
                unix.add(line.split()[6])
    except OSError:
        pass
    n = 0
    for target in fds(pid).values():
        m = re.match(r"socket:\[(\d+)\]", target)
        if m and m.group(1) in unix:
            continue
        n += 1
    return n


def fds(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def wait_fd_count(pid, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        n = fd_count(pid)
        if n <= want or time.monotonic() >= deadline:
            return n
        time.sleep(0.02)


def sha256(data):
    return hashlib.sha256(data).hexdigest()
