"""PROXY protocol ([server] proxy_protocol = yes; issue 5) through a real
HAProxy (Debian package haproxy) that the test starts on 127.0.0.1 in
front of two authrelay instances, with send-proxy (v1) and send-proxy-v2.

The client connects to HAProxy from 127.0.0.2, so the address the PROXY
header carries differs from the one authrelay sees the connection come
from (HAProxy's, 127.0.0.1): the Received header upstream, the audit log
and the limits must all use 127.0.0.2. A connection to a proxy_protocol
listener that does not start with a valid header is closed without a
reply; with proxy_protocol = no a PROXY line is just an unknown command.
contrib/haproxy/haproxy.cfg is checked by haproxy -c and run, with its
addresses replaced by the test's.
"""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import SRCDIR, USERS
from harness import SMTPRaw, check, free_port, require
from policy_helpers import (OTHER_IP, THIRD_IP, audit_records, marker,
                            message, tcp_from, transact, wait_record)

CLIENT_IP = OTHER_IP            # the real client, behind HAProxy
CONTRIB_CFG = SRCDIR / "contrib" / "haproxy" / "haproxy.cfg"


class HAProxy:
    """haproxy -db -f CFG in the foreground, with a stats socket to read
    the servers' health from. Stopped with SIGTERM (bounded), then
    SIGKILL."""

    def __init__(self, workdir, cfg_body):
        self.bin = require("haproxy", "haproxy (Debian package haproxy)")
        self.dir = Path(workdir)
        # sun_path is at most 107 octets: keep the socket short.
        self.stats_dir = tempfile.mkdtemp(prefix="ar-hap-", dir="/tmp")
        self.stats = Path(self.stats_dir) / "stats"
        self.cfg = self.dir / "haproxy.cfg"
        self.log_path = self.dir / "haproxy.log"
        self.cfg.write_text(textwrap.dedent(f"""\
            global
                maxconn 200
                stats socket {self.stats} mode 600 level admin
                log stdout format raw local0 info

            """) + cfg_body)
        self.proc = None

    def check_config(self):
        r = subprocess.run([self.bin, "-c", "-f", str(self.cfg)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, \
            f"haproxy -c:\n{r.stdout}{r.stderr}\n--- config:\n" \
            f"{self.cfg.read_text()}"

    def start(self, ports, timeout=10):
        self.check_config()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.bin, "-db", "-f", str(self.cfg)],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        for port in ports:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port),
                                             timeout=1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or \
                            time.monotonic() > deadline:
                        raise AssertionError(
                            f"haproxy does not listen on {port}:\n"
                            f"{self.log()}")
                    time.sleep(0.05)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def command(self, cmd):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(str(self.stats))
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                data = s.recv(65536)
                if not data:
                    break
                out += data
        finally:
            s.close()
        return out.decode()

    def server_status(self, field="status"):
        """{(backend, server): status} from "show stat" (or another
        column, such as check_status)."""
        lines = self.command("show stat").splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            if not line:
                continue
            row = dict(zip(head, line.split(",")))
            if row["svname"] not in ("FRONTEND", "BACKEND"):
                out[(row["pxname"], row["svname"])] = row[field]
        return out

    def wait_servers_up(self, timeout=15):
        """Every server UP after a health check that passed at layer 7
        (smtpchk: the greeting and the EHLO reply were 2xx)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.server_status()
            chk = self.server_status("check_status")
            if st and all(v.startswith("UP") for v in st.values()) and \
                    all(v == "L7OK" for v in chk.values()):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"servers not all UP after a passed "
                                     f"check: {st} {chk}\n{self.log()}")
            time.sleep(0.2)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.stats_dir, ignore_errors=True)


@pytest.fixture
def haproxy(tmp_path):
    """Factory: haproxy(cfg_body, ports to wait for, wait_up=True)."""
    started = []

    def start(cfg_body, ports, wait_up=True):
        d = tmp_path / f"haproxy{len(started)}"
        d.mkdir()
        h = HAProxy(d, cfg_body)
        started.append(h)
        h.start(ports)
        if wait_up:
            h.wait_servers_up()
        return h

    yield start
    for h in started:
        h.stop()


PROXIED = {"server": {"proxy_protocol": "yes"}}

# The tests' own HAProxy defaults (quick checks: every second).
DEFAULTS = textwrap.dedent("""\
    defaults
        mode tcp
        log global
        option tcplog
        timeout connect 5s
        timeout client 60s
        timeout server 60s
        default-server inter 1s fall 2 rise 1

    """)


def backend(name, servers, proxy, check_mode="smtp"):
    """A backend over (name, port) servers; proxy: send-proxy or
    send-proxy-v2. Health checks as in the contrib example: the PROXY
    header, then the greeting and EHLO (option smtpchk); check_mode
    "tls" does the TLS handshake first (port 465)."""
    lines = [f"backend {name}", "    balance roundrobin",
             "    option smtpchk EHLO haproxy-check.example.org"]
    for sname, port in servers:
        extra = ""
        if check_mode:
            extra = " check check-send-proxy"
            if check_mode == "tls":
                extra += " check-ssl verify none"
        lines.append(f"    server {sname} 127.0.0.1:{port} {proxy}{extra}")
    return "\n".join(lines) + "\n\n"


def frontend(name, port, backend_name):
    return (f"frontend {name}\n    bind 127.0.0.1:{port}\n"
            f"    default_backend {backend_name}\n\n")


def two_instances(authrelay, config=None):
    conf = {"server": {"proxy_protocol": "yes"}}
    for section, keys in (config or {}).items():
        conf.setdefault(section, {}).update(keys)
    return [authrelay(config=conf), authrelay(config=conf)]


def received_client(data):
    """The address in our Received header: 'from HELO ([ADDR])'."""
    m = re.search(rb"^Received: from \S+ \(\[([^\]]+)\]\)", data, re.M)
    assert m, f"no Received header of ours in {data[:300]!r}"
    return m.group(1).decode()


def submit_via(port, d, smarthost, source_ip=CLIENT_IP, implicit_tls=False,
               user="alice"):
    """A whole submission through HAProxy's port from source_ip; returns
    the smarthost's envelope."""
    sock = tcp_from(port, source_ip)
    c = SMTPRaw(port, sock=sock,
                tls_context=d.tls_context if implicit_tls else None)
    c.ehlo()
    if not implicit_tls:
        c.starttls(d.tls_context)
        c.ehlo()
    check(c.auth_plain(user, USERS[user]), 235, "2.7.0")
    mark = marker()
    out = transact(c, f"{user}@example.com", data=message(mark=mark))
    assert out.code == 250, f"got {out!r}"
    c.quit()
    env = smarthost.wait_for(mark.encode())
    assert env is not None
    return env, mark


def served_by(daemons, mark):
    """Which instance logged the message with this marker."""
    mid = f"<{mark}@client.example.org>"
    for i, d in enumerate(daemons):
        for rec in audit_records(d.log(), "message"):
            if rec.get("message_id") == mid:
                return i, rec
    return None, None


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_through_haproxy(authrelay, smarthost, haproxy,
                                        version):
    daemons = two_instances(authrelay)
    proxy = "send-proxy" if version == "v1" else "send-proxy-v2"
    p587, p465 = free_port(), free_port()
    cfg = (DEFAULTS +
           frontend("submission", p587, "relays_587") +
           frontend("submissions", p465, "relays_465") +
           backend("relays_587", [(f"r{i}", d.starttls_port)
                                  for i, d in enumerate(daemons)], proxy) +
           backend("relays_465", [(f"r{i}", d.tls_port)
                                  for i, d in enumerate(daemons)], proxy,
                   check_mode="tls"))
    h = haproxy(cfg, [p587, p465])
    seen = {}
    for port, tls in ((p587, False), (p587, False), (p465, True),
                      (p465, True)):
        env, mark = submit_via(port, daemons[0], smarthost,
                               implicit_tls=tls)
        got = received_client(env.original_content)
        assert got == CLIENT_IP, \
            f"Received header names {got}, want the client {CLIENT_IP} " \
            f"(HAProxy is 127.0.0.1)"
        i, rec = served_by(daemons, mark)
        assert rec is not None, "no message record in either instance"
        assert rec["client"] == CLIENT_IP, f"got {rec.line!r}"
        seen.setdefault(port, set()).add(i)
        # The session's connect record names both: the client, and the
        # proxy it came through.
        conn = wait_record(daemons[i], "connect", session=rec["session"])
        assert conn["client"] == CLIENT_IP and \
            conn.get("proxy") == "127.0.0.1", f"got {conn.line!r}"
        assert conn["listener"] == ("tls" if tls else "starttls")
    # Round robin: each port's two sessions went to both instances.
    assert seen == {p587: {0, 1}, p465: {0, 1}}, \
        f"instances that served each port: {seen}"
    # HAProxy's health checks (PROXY LOCAL / UNKNOWN) left no client
    # address of their own in the instances' message records, and the
    # servers are up.
    assert all(v.startswith("UP") for v in h.server_status().values())


def test_bare_connection_to_proxy_listener_is_closed(authrelay):
    d = authrelay(config={"server": {"proxy_protocol": "yes"},
                          "tls": {"handshake_timeout": "2s"}})
    cases = {
        "SMTP straight away": b"EHLO client.example.org\r\n",
        "a broken v1 header": b"PROXY TCP4 1.2.3.4 nonsense\r\n",
        "v1 with an address of the wrong family":
            b"PROXY TCP4 ::1 127.0.0.1 1234 587\r\n",
        "v2 signature, bad version":
            b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\0" * 12,
        "a TLS ClientHello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    }
    for what, first in cases.items():
        s = socket.create_connection(("127.0.0.1", d.starttls_port),
                                     timeout=10)
        try:
            s.sendall(first)
            s.settimeout(10)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            assert data == b"", f"{what}: got {data!r}, want a close " \
                f"without a reply"
        finally:
            s.close()
    # Saying nothing: closed after the header timeout, without a reply.
    s = socket.create_connection(("127.0.0.1", d.starttls_port), timeout=10)
    try:
        t0 = time.monotonic()
        s.settimeout(10)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        # Within the socket's 10 s timeout, 10 x the header timeout.
        assert data == b"", f"silent client: got {data!r}"
    finally:
        s.close()
    # The implicit TLS listener wants the header first too.
    s = socket.create_connection(("127.0.0.1", d.tls_port), timeout=10)
    try:
        with pytest.raises(OSError):
            d.tls_context.wrap_socket(s, server_hostname="localhost")
    finally:
        s.close()
    recs = audit_records(d.log(), "proxy-header-invalid")
    assert len(recs) >= len(cases), d.log()


def test_valid_header_by_hand_v1_and_v2(authrelay, smarthost):
    """Without HAProxy: exactly the header is read, the SMTP that follows
    it in the same segment is not lost."""
    d = authrelay(config=PROXIED)
    v1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 587\r\n"
    src = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    dst = socket.inet_pton(socket.AF_INET6, "::1")
    v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x21" + struct.pack("!H", 36) + src +
          dst + struct.pack("!HH", 40001, 587))
    # A balancer on a dual-stack socket names an IPv4 client IPv4-mapped:
    # it is the IPv4 address from then on.
    mapped = b"PROXY TCP6 ::ffff:192.0.2.8 ::1 40002 587\r\n"
    for header, want in ((v1, "192.0.2.7"), (v2, "2001:db8::7"),
                         (mapped, "192.0.2.8")):
        s = socket.create_connection(("127.0.0.1", d.starttls_port),
                                     timeout=10)
        s.sendall(header + b"NOOP\r\n")
        c = SMTPRaw(0, sock=s, greeting=True)
        check(c.read_reply(), 250, "2.0.0", "NOOP sent with the header")
        c.ehlo()
        c.starttls(d.tls_context)
        c.ehlo()
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
        mark = marker()
        out = transact(c, "alice@example.com", data=message(mark=mark))
        assert out.code == 250, f"got {out!r}"
        c.quit()
        env = smarthost.wait_for(mark.encode())
        assert received_client(env.original_content) == want
        wait_record(d, "auth-ok", client=want)


def test_proxy_header_is_an_unknown_command_when_not_configured(authrelay):
    d = authrelay(config={"server": {"proxy_protocol": "no"}})
    with d.connect() as c:
        r = c.cmd("PROXY TCP4 192.0.2.9 127.0.0.1 40000 587")
        check(r, 500, "5.5.1", "PROXY without proxy_protocol")
        c.ehlo()
        c.quit()
    assert not [r for r in audit_records(d.log())
                if r.get("client") == "192.0.2.9"], d.log()


def test_limits_use_the_address_behind_haproxy(authrelay, haproxy):
    """An attacker cannot hide behind the balancer: failed logins from
    127.0.0.2 through HAProxy block 127.0.0.2, not HAProxy's address, so
    127.0.0.3 through the same HAProxy still logs in; and the per-address
    connection limit counts 127.0.0.2's connections, not HAProxy's."""
    d = authrelay(config={"server": {"proxy_protocol": "yes",
                                     "max_connections_per_ip": 2},
                          "auth": {"failure_delay": "0",
                                   "max_failures_per_ip": 3}})
    port = free_port()
    haproxy(DEFAULTS + frontend("submission", port, "relay") +
            backend("relay", [("r0", d.starttls_port)], "send-proxy-v2"),
            [port])

    def session(ip):
        c = SMTPRaw(port, sock=tcp_from(port, ip))
        c.ehlo()
        c.starttls(d.tls_context)
        c.ehlo()
        return c

    # Connection limit: two from 127.0.0.2 are fine, the third is not;
    # 127.0.0.3 is not affected.
    held = [session(CLIENT_IP), session(CLIENT_IP)]
    third = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=(CLIENT_IP, 0))
    third.settimeout(10)
    try:
        data = third.recv(4096)
    except ConnectionResetError:
        data = b""
    third.close()
    assert data.startswith(b"421 4.7.0"), \
        f"third connection from {CLIENT_IP}: got {data!r}, want 421 4.7.0 " \
        f"(as without a proxy)"
    other = session(THIRD_IP)
    check(other.auth_plain("bob", USERS["bob"]), 235, "2.7.0")
    other.quit()
    for c in held:
        c.close()
    time.sleep(0.5)

    # Failed logins: 127.0.0.2 gets blocked at the third (the failure
    # that reaches max_failures_per_ip is the last password checked).
    c = session(CLIENT_IP)
    for i in range(2):
        check(c.auth_plain("alice", f"wrong-{i}"), 535, "5.7.8")
    r = c.auth_plain("alice", "wrong-2")
    check(r, 421, "4.7.0", "the failure that reaches the threshold")
    c.close()
    wait_record(d, "client-blocked", client=CLIENT_IP)
    # A new connection from 127.0.0.2 through HAProxy is refused ...
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(CLIENT_IP, 0))
    s.settimeout(10)
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        data = b""
    s.close()
    assert data.startswith(b"421 4.7.0"), \
        f"blocked client through HAProxy: got {data!r}, want 421 4.7.0 at " \
        f"the greeting (as without a proxy)"
    # ... while 127.0.0.3 through the same HAProxy logs in.
    c = session(THIRD_IP)
    check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
    c.quit()


# --------------------------------------------------------------------------
# contrib/haproxy/haproxy.cfg

def test_contrib_haproxy_cfg_is_valid():
    bin_ = require("haproxy", "haproxy (Debian package haproxy)")
    assert CONTRIB_CFG.exists(), f"{CONTRIB_CFG} missing"
    r = subprocess.run([bin_, "-c", "-f", str(CONTRIB_CFG)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"haproxy -c:\n{r.stdout}{r.stderr}"
    text = CONTRIB_CFG.read_text()
    servers = re.findall(r"^\s*server\s+.*$", text, re.M)
    assert len(servers) == 4, f"want two instances x (587, 465): {servers}"
    for s in servers:
        assert "send-proxy-v2" in s and re.search(r"\bcheck\b", s), s
        assert "check-send-proxy" in s, s


def contrib_sections(ports, servers):
    """The defaults/frontend/backend sections of the contrib file with
    its listen and server addresses replaced: ports maps the bound port
    (587, 465) to a test port; servers maps (address, port) of each
    server line to a test port on 127.0.0.1."""
    out, keep = [], False
    for line in CONTRIB_CFG.read_text().splitlines():
        head = line.split("#", 1)[0].strip()
        if line and not line[0].isspace() and head:
            keep = head.split()[0] in ("defaults", "frontend", "backend")
        if not keep:
            continue
        m = re.match(r"^(\s*bind\s+)(\S*?):(\d+)(.*)$", line)
        if m:
            line = f"{m.group(1)}127.0.0.1:{ports[int(m.group(3))]}" \
                f"{m.group(4)}"
        m = re.match(r"^(\s*server\s+\S+\s+)(\S+):(\d+)(.*)$", line)
        if m:
            port = servers[(m.group(2), int(m.group(3)))]
            line = f"{m.group(1)}127.0.0.1:{port}{m.group(4)}"
        if re.match(r"^\s*log\s", line):
            continue
        # Quicker checks than the example's, for the test's sake.
        line = re.sub(r"\binter \d+s\b", "inter 1s", line)
        out.append(line)
    return "\n".join(out) + "\n"


def test_contrib_haproxy_example_balances_two_instances(authrelay, smarthost,
                                                        haproxy):
    require("haproxy", "haproxy (Debian package haproxy)")
    daemons = two_instances(authrelay)
    text = CONTRIB_CFG.read_text()
    addrs = re.findall(r"^\s*server\s+\S+\s+(\S+):(\d+)", text, re.M)
    hosts = sorted({a for a, _p in addrs})
    assert len(hosts) == 2, f"want two instances: {addrs}"
    servers = {}
    for (a, p) in addrs:
        d = daemons[hosts.index(a)]
        servers[(a, int(p))] = d.tls_port if int(p) == 465 \
            else d.starttls_port
    p587, p465 = free_port(), free_port()
    cfg = contrib_sections({587: p587, 465: p465}, servers)
    h = haproxy(cfg, [p587, p465])
    st = h.server_status()
    assert len(st) == 4 and all(v.startswith("UP") for v in st.values()), st
    used = set()
    for port, tls in ((p587, False), (p587, False), (p465, True),
                      (p465, True)):
        env, mark = submit_via(port, daemons[0], smarthost,
                               implicit_tls=tls)
        assert received_client(env.original_content) == CLIENT_IP
        i, rec = served_by(daemons, mark)
        assert rec is not None and rec["client"] == CLIENT_IP
        used.add(i)
    assert used == {0, 1}, f"instances used: {used}"
    # One instance down: the health check notices, all goes to the other.
    daemons[1].stop()
    deadline = time.monotonic() + 20
    while True:
        st = h.server_status()
        down = [k for k, v in st.items() if v.startswith("DOWN")]
        if len(down) == 2:
            break
        assert time.monotonic() < deadline, f"not marked down: {st}"
        time.sleep(0.3)
    for port, tls in ((p587, False), (p465, True)):
        env, mark = submit_via(port, daemons[0], smarthost,
                               implicit_tls=tls)
        i, rec = served_by(daemons, mark)
        assert i == 0
