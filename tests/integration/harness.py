"""Helpers for the authrelay integration tests: SMTP over real sockets,
the CI skip-or-fail rule, free ports, and process look-ups.

Every wait here is bounded in time; nothing here starts a process.
"""

import base64
import os
import re
import select
import shutil
import socket
import ssl
import time

import pytest

CRLF = b"\r\n"

# Seconds to wait for one SMTP reply. Sanitizer builds are slower, so the
# default is generous; a healthy daemon answers in milliseconds.
REPLY_TIMEOUT = float(os.environ.get("AUTHRELAY_TEST_TIMEOUT", "10"))

IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")


# --------------------------------------------------------------------------
# Skip outside CI, fail under CI=true (STYLE.md item 12)

def missing(what):
    """A component the test needs is missing: skip, or fail under CI."""
    msg = f"missing component: {what}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: a missing component is a failure)",
                    pytrace=False)
    pytest.skip(msg)


def require(tool, what=None):
    """Return the path of a program (name on PATH, or absolute path) or of
    a file; skip or fail (under CI) when it is not there."""
    if os.path.isabs(tool):
        if os.path.exists(tool):
            return tool
    else:
        found = shutil.which(tool, path=os.environ.get("PATH", "") +
                             ":/usr/sbin:/sbin:/usr/bin:/bin")
        if found:
            return found
    missing(what or tool)
    return None  # not reached


def require_root():
    if os.geteuid() != 0:
        missing("root privileges (the test creates a local user and a "
                "/etc/pam.d service)")


# --------------------------------------------------------------------------
# Ports

_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, never
    the same twice in one test run."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def assert_port_closed(port, what=""):
    """Nothing listens on 127.0.0.1:port (connection refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return
    finally:
        s.close()
    raise AssertionError(f"something listens on 127.0.0.1:{port} {what}")


# --------------------------------------------------------------------------
# Processes

def children_of(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        rest = stat_fields(entry)
        if rest is not None and len(rest) > 1 and int(rest[1]) == pid:
            out.append(int(entry))
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace")
                    for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def stat_fields(pid):
    """/proc/PID/stat after "pid (comm) ": [state, ppid, ...]; None when
    the process is gone. (comm may hold spaces and ')'.)"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def parent_of(pid):
    fields = stat_fields(pid)
    return None if fields is None else int(fields[1])


def process_ended(pid):
    """Gone, or a zombie not yet reaped."""
    fields = stat_fields(pid)
    return fields is None or fields[:1] == ["Z"]


def proc_status(pid):
    """/proc/PID/status as a dict of its fields (values as text)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def privilege_problems(pid, user):
    """What the network process pid holds that it should not: a uid or
    gid other than user's in any of the four slots, a capability in any
    set, no no_new_privs, no seccomp filter. Empty when all is well."""
    st = proc_status(pid)
    problems = []
    for field, want in (("Uid", user.pw_uid), ("Gid", user.pw_gid)):
        ids = [int(x) for x in st[field].split()]
        if ids != [want] * 4:
            problems.append(f"{field} {ids}, want {[want] * 4}")
    if st.get("Groups", "") not in ("", str(user.pw_gid)):
        problems.append(f"supplementary groups {st['Groups']!r}")
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(st[cap], 16) != 0:
            problems.append(f"{cap} {st[cap]}, want 0")
    if st.get("NoNewPrivs") != "1":
        problems.append(f"NoNewPrivs {st.get('NoNewPrivs')}, want 1")
    if st.get("Seccomp") != "2":
        problems.append(f"Seccomp {st.get('Seccomp')}, want 2 (filter)")
    return problems


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_for_file(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


# --------------------------------------------------------------------------
# SMTP replies

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


class Reply:
    """One complete SMTP reply (possibly multi-line)."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines      # text after "NNN-" / "NNN ", without CRLF
        self.raw = raw          # the exact octets received

    @property
    def enhanced(self):
        """The RFC 3463 enhanced status code of the first line, or None."""
        m = _ENHANCED.match(self.lines[0]) if self.lines else None
        return m.group(0) if m else None

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def first_line(self):
        return self.raw.split(CRLF, 1)[0].decode("utf-8", "replace")

    def keywords(self):
        """EHLO: the extension keywords (upper-case) -> their parameters."""
        out = {}
        for line in self.lines[1:]:
            parts = line.split()
            if parts:
                out[parts[0].upper()] = parts[1:]
        return out

    def __repr__(self):
        return f"Reply({self.raw!r})"


class ConnectionClosed(AssertionError):
    pass


class ReplyTimeout(AssertionError):
    pass


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def plain_response(user, password, authzid=""):
    """RFC 4616 PLAIN message, base64: [authzid] NUL authcid NUL passwd."""
    return b64(authzid.encode() + b"\0" + user.encode("utf-8") + b"\0" +
               password.encode("utf-8"))


def client_tls_context(ca_file):
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class SMTPRaw:
    """An SMTP client over a real socket that sends exact octets and reads
    complete replies, with a deadline on every read.

    tls_context: wrap at connect (implicit TLS, RFC 8314).
    greeting: read and check the 220 greeting at connect."""

    def __init__(self, port, host="127.0.0.1", tls_context=None,
                 greeting=True, timeout=REPLY_TIMEOUT,
                 server_hostname="localhost", sock=None):
        self.timeout = timeout
        self.buf = b""
        self.tls = False
        self.server_hostname = server_hostname
        # sock: a connection made elsewhere (port and host are ignored).
        self.sock = sock or socket.create_connection((host, port),
                                                     timeout=timeout)
        if tls_context is not None:
            self._wrap(tls_context)
        self.greeting = None
        if greeting:
            self.greeting = self.read_reply()
            assert self.greeting.code == 220, \
                f"greeting: got {self.greeting!r}, want 220"

    # -- plumbing --------------------------------------------------------

    def _wrap(self, ctx):
        self.sock.settimeout(self.timeout)
        try:
            self.sock = ctx.wrap_socket(self.sock,
                                        server_hostname=self.server_hostname)
        except (ssl.SSLError, OSError) as e:
            raise AssertionError(f"TLS handshake failed: {e!r}") from e
        self.tls = True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _recv(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        if self.tls and self.sock.pending():
            return self.sock.recv(65536)
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(65536)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError,
                ConnectionResetError):
            return b""
        except ssl.SSLError as e:
            if "UNEXPECTED_EOF" in str(e) or "EOF" in str(e):
                return b""
            raise

    def waiting(self):
        """Has the server sent anything not read yet? (No wait: for tests
        of order, "this reply came before that one".)"""
        if self.buf or (self.tls and self.sock.pending()):
            return True
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def read_reply(self, timeout=None):
        """Read one complete reply; assert its syntax (RFC 5321 §4.2)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines, raw, code = [], b"", None
        while True:
            while CRLF not in self.buf:
                try:
                    data = self._recv(deadline)
                except socket.timeout:
                    raise ReplyTimeout(
                        f"no complete reply within {timeout or self.timeout}"
                        f" s; got so far {raw + self.buf!r}") from None
                if not data:
                    raise ConnectionClosed(
                        f"connection closed; got so far {raw + self.buf!r}")
                self.buf += data
            line, self.buf = self.buf.split(CRLF, 1)
            raw += line + CRLF
            m = re.match(rb"^([2-5][0-9][0-9])([ -]|$)", line)
            assert m, f"malformed reply line {line!r} (reply so far {raw!r})"
            this = int(m.group(1))
            assert code is None or this == code, \
                f"reply code changed inside a multi-line reply: {raw!r}"
            code = this
            lines.append(line[4:].decode("utf-8", "replace"))
            if m.group(2) != b"-":
                return Reply(code, lines, raw)

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF added) and read its reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + CRLF)
        return self.read_reply(timeout)

    def expect(self, line, code, enhanced=None, timeout=None):
        """Send a command; assert the reply code (and enhanced code)."""
        r = self.cmd(line, timeout)
        check(r, code, enhanced, what=line)
        return r

    def assert_silent(self, seconds):
        """Nothing arrives within seconds (and nothing is buffered)."""
        assert self.buf == b"", f"unexpected data buffered: {self.buf!r}"
        deadline = time.monotonic() + seconds
        try:
            data = self._recv(deadline)
        except socket.timeout:
            return
        raise AssertionError(f"unexpected data from the server: {data!r}")

    def assert_closed(self, timeout=None):
        """The server closes the connection within timeout; nothing else
        arrives before the close."""
        deadline = time.monotonic() + (timeout or self.timeout)
        got = self.buf
        self.buf = b""
        while True:
            try:
                data = self._recv(deadline)
            except socket.timeout:
                raise AssertionError(
                    f"connection still open after {timeout or self.timeout}"
                    f" s (received {got!r})") from None
            except OSError:
                data = b""
            if not data:
                assert got == b"", f"data before close: {got!r}"
                return
            got += data

    # -- SMTP verbs ------------------------------------------------------

    def ehlo(self, name="client.example.org"):
        r = self.cmd(f"EHLO {name}")
        check(r, 250, None, what="EHLO")
        return r

    def starttls(self, ctx):
        """STARTTLS, check 220, check that nothing else came, handshake."""
        r = self.cmd("STARTTLS")
        check(r, 220, None, what="STARTTLS")
        assert self.buf == b"", \
            f"octets after the STARTTLS 220 before the handshake: {self.buf!r}"
        self._wrap(ctx)
        return r

    def auth_plain(self, user, password, authzid=""):
        return self.cmd("AUTH PLAIN " + plain_response(user, password,
                                                        authzid))

    def auth_login(self, user, password):
        r = self.cmd("AUTH LOGIN")
        check(r, 334, None, what="AUTH LOGIN")
        assert r.lines[0] == "VXNlcm5hbWU6", f"username prompt: {r!r}"
        r = self.cmd(b64(user))
        check(r, 334, None, what="AUTH LOGIN user")
        assert r.lines[0] == "UGFzc3dvcmQ6", f"password prompt: {r!r}"
        return self.cmd(b64(password))

    def quit(self):
        r = self.cmd("QUIT")
        check(r, 221, "2.0.0", what="QUIT")
        self.assert_closed()
        self.close()
        return r


def check(reply, code, enhanced=None, what=""):
    """Assert a reply's code and, if given, its enhanced code. Every
    4xx/5xx reply must carry an enhanced code (RFC 3463, SPEC.md)."""
    label = f"{what!r}: " if what else ""
    assert reply.code == code, \
        f"{label}got {reply.first_line!r}, want {code}" + \
        (f" {enhanced}" if enhanced else "")
    if enhanced is not None:
        assert reply.enhanced == enhanced, \
            f"{label}got {reply.first_line!r}, want {code} {enhanced}"
    if code >= 400:
        assert reply.enhanced is not None and \
            reply.enhanced[0] == str(code)[0], \
            f"{label}error reply without a matching enhanced status code: " \
            f"{reply.first_line!r}"
    return reply


def wait_readable(sock, timeout):
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)
