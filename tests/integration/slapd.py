"""A throwaway OpenLDAP server (Debian's slapd) for the LDAP backend tests.

Slapd(...).start() runs /usr/sbin/slapd in the foreground from a temporary
directory, listening on 127.0.0.1 only (ldap:// and ldaps://), with a
generated slapd.conf: the mdb backend, the memberof overlay, TLS with a
certificate from the test CA (conftest.py's pki), and `-d stats` so that
every operation, binds included, is written to its log, where bind_count()
counts them. populate() loads the directory below (over LDAP as the
rootdn, so that the memberof overlay sees every change). Every wait is
bounded; stop() always ends the process (SIGCONT, SIGTERM, SIGKILL).

The directory (BASE = dc=example,dc=com):

  ou=people    USERS: inetOrgPerson entries with mail (and some
               mailAlternateAddress, AD-style proxyAddresses)
  ou=services  the service account SERVICE_DN (SERVICE_PASSWORD)
  ou=groups    senders          groupOfNames        member: alice
               senders-unique   groupOfUniqueNames  uniqueMember: alice
               senders-posix    posixGroup          memberUid: alice
               top > mid > leaf groupOfNames, nested: leaf holds carol,
                                mid holds leaf, top holds mid
               utop > uleaf     groupOfUniqueNames, nested: uleaf holds
                                carol, utop holds uleaf
               cycle-a, cycle-b groupOfNames holding each other; cycle-a
                                holds dave
               Smith\\, J (Sales)  groupOfNames with filter specials in its
                                DN, holding bob; sales-all holds it
  Anonymous users see nothing; users read their own entry; the service
  account reads everything but passwords.
"""

import base64
import os
import signal
import socket
import struct
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from harness import free_port, missing, require

SLAPD = "/usr/sbin/slapd"
LDAPADD = "ldapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

BASE = "dc=example,dc=com"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "r00t-Secret"
SERVICE_DN = f"cn=authrelay,ou=services,{BASE}"
SERVICE_PASSWORD = "svc-Secret-42"

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def user_dn(uid):
    return f"uid={uid},{PEOPLE}"


def group_dn(cn):
    return f"cn={cn},{GROUPS}"


SALES_DN = f"cn=Smith\\, J (Sales),{GROUPS}"

# uid -> password, addresses (attribute -> values)
USERS = {
    "alice": {"password": "Al1ce-ldap-secret",
              "mail": ["alice@example.com"],
              "mailAlternateAddress": ["a.lice@example.org",
                                       "ALICE@example.com"]},
    "bob": {"password": "B0b-ldap-secret", "mail": ["bob@example.com"]},
    "carol": {"password": "correct horse battery staple",
              "mail": ["carol@example.com"]},
    "dave": {"password": "D4ve-ldap-secret", "mail": ["dave@example.com"]},
    "erin": {"password": "Er1n-ldap-secret",
             "proxyAddresses": ["smtp:e@corp.example",
                                "SMTP:erin@corp.example",
                                "X400:c=US;a= ;p=Corp;o=Ex;s=Erin;",
                                "SIP:erin@corp.example"]},
    "Frank": {"password": "Fr4nk-ldap-secret",
              "mail": ["frank@example.com"]},
    "jörg": {"password": "pässwörd-€", "mail": ["joerg@example.com"]},
    "root": {"password": "R00t-user-secret", "mail": ["root@example.com"]},
}


def _posix_id(n):
    return 5000 + n


TEST_SCHEMA = """\
# mailAlternateAddress (as in Sun's and qmail's schemas) and Active
# Directory's proxyAddresses, under OpenLDAP's experimental arc.
attributetype ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'mailAlternateAddress'
	EQUALITY caseIgnoreIA5Match
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
attributetype ( 1.3.6.1.4.1.4203.666.11.99.2 NAME 'proxyAddresses'
	EQUALITY caseIgnoreMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.4203.666.11.99.3 NAME 'authrelayTestMail'
	SUP top AUXILIARY MAY ( mailAlternateAddress $ proxyAddresses ) )
"""


def _entry(dn, attrs):
    lines = [f"dn: {dn}"]
    for name, values in attrs:
        for v in values if isinstance(values, list) else [values]:
            if isinstance(v, str) and (not v.isascii() or
                                       v.startswith((" ", ":", "<"))):
                lines.append(f"{name}:: " +
                             base64.b64encode(v.encode()).decode())
            else:
                lines.append(f"{name}: {v}")
    return "\n".join(lines) + "\n"


def directory_ldif():
    """The entries, in an order the memberof overlay can follow (members
    exist before the groups that list them)."""
    out = [
        _entry(BASE, [("objectClass", ["dcObject", "organization"]),
                      ("o", "example"), ("dc", "example")]),
        _entry(PEOPLE, [("objectClass", "organizationalUnit"),
                        ("ou", "people")]),
        _entry(GROUPS, [("objectClass", "organizationalUnit"),
                        ("ou", "groups")]),
        _entry(f"ou=services,{BASE}", [("objectClass", "organizationalUnit"),
                                       ("ou", "services")]),
        _entry(SERVICE_DN, [("objectClass", ["organizationalRole",
                                             "simpleSecurityObject"]),
                            ("cn", "authrelay"),
                            ("userPassword", SERVICE_PASSWORD)]),
    ]
    for n, (uid, u) in enumerate(USERS.items()):
        attrs = [("objectClass", ["inetOrgPerson", "authrelayTestMail"]),
                 ("uid", uid), ("cn", uid), ("sn", uid),
                 ("userPassword", u["password"])]
        for a in ("mail", "mailAlternateAddress", "proxyAddresses"):
            if a in u:
                attrs.append((a, u[a]))
        out.append(_entry(user_dn(uid), attrs))

    def gon(cn, members, dn=None):
        out.append(_entry(dn or group_dn(cn),
                          [("objectClass", "groupOfNames"), ("cn", cn),
                           ("member", members)]))

    def goun(cn, members):
        out.append(_entry(group_dn(cn),
                          [("objectClass", "groupOfUniqueNames"),
                           ("cn", cn), ("uniqueMember", members)]))

    gon("senders", [user_dn("alice")])
    goun("senders-unique", [user_dn("alice")])
    out.append(_entry(group_dn("senders-posix"),
                      [("objectClass", "posixGroup"), ("cn", "senders-posix"),
                       ("gidNumber", str(_posix_id(1))),
                       ("memberUid", ["alice"])]))
    gon("leaf", [user_dn("carol")])
    gon("mid", [group_dn("leaf")])
    gon("top", [group_dn("mid")])
    goun("uleaf", [user_dn("carol")])
    goun("utop", [group_dn("uleaf")])
    gon("cycle-a", [user_dn("dave")])
    gon("cycle-b", [group_dn("cycle-a")])
    gon("Smith, J (Sales)", [user_dn("bob")], dn=SALES_DN)
    gon("sales-all", [SALES_DN])
    ldif = "\n".join(out)
    # Close the cycle: cycle-a also holds cycle-b.
    ldif += textwrap.dedent(f"""
        dn: {group_dn("cycle-a")}
        changetype: modify
        add: member
        member: {group_dn("cycle-b")}
        """)
    return ldif


def _openssl(*args, cwd):
    openssl = require("openssl")
    r = subprocess.run([openssl, *args], cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")


def make_other_ca(d):
    """A CA that signed nothing slapd presents: as ca_file, every
    server certificate fails verification. Returns its certificate."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", "other-ca.key",
             "-out", "other-ca.crt", "-days", "3", "-subj",
             "/CN=authrelay other test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return d / "other-ca.crt"


def make_cert_for(pki, d, san, name="wrongname"):
    """A server certificate from the test CA for other names (san, e.g.
    "DNS:ldap.elsewhere.example"). Returns (cert, key)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.ext").write_text(textwrap.dedent(f"""\
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature, keyEncipherment
        extendedKeyUsage = serverAuth
        subjectAltName = {san}
        """))
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", "/CN=ldap.elsewhere.example", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(pki.ca_cert),
             "-CAkey", str(pki.dir / "ca.key"), "-CAcreateserial",
             "-CAserial", f"{name}.srl", "-days", "3",
             "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)
    (d / f"{name}.key").chmod(0o600)
    return d / f"{name}.crt", d / f"{name}.key"


class Slapd:
    """One slapd process: start(), stop(), kill(), pause()/resume()
    (SIGSTOP/SIGCONT), restart() on the same ports and database."""

    def __init__(self, workdir, pki, name="slapd", cert=None, key=None):
        self.dir = Path(workdir)
        self.name = name
        self.pki = pki
        self.cert = Path(cert or pki.rsa_cert)
        self.key = Path(key or pki.rsa_key)
        self.port = free_port()
        self.ldaps_port = free_port()
        self.proc = None
        self.log_path = self.dir / f"{name}.log"
        self.conf_path = self.dir / f"{name}.conf"
        self.db = self.dir / f"{name}-db"
        self.secret_file = self.dir / f"{name}-service.secret"
        self._log = None
        self.paused = False

    @property
    def uri(self):
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self):
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def write_config(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db.mkdir(exist_ok=True)
        schema = self.dir / "authrelay-test.schema"
        schema.write_text(TEST_SCHEMA)
        self.secret_file.write_text(SERVICE_PASSWORD + "\n")
        self.secret_file.chmod(0o600)
        lines = [f"include {SCHEMA_DIR}/{s}.schema" for s in
                 ("core", "cosine", "nis", "inetorgperson")]
        lines += [
            f"include {schema}",
            f"pidfile {self.dir}/{self.name}.pid",
            f"argsfile {self.dir}/{self.name}.args",
            f"modulepath {MODULE_DIR}",
            "moduleload back_mdb",
            "moduleload memberof",
            f"TLSCACertificateFile {self.pki.ca_cert}",
            f"TLSCertificateFile {self.cert}",
            f"TLSCertificateKeyFile {self.key}",
            "sizelimit unlimited",
            "",
            "database mdb",
            f'suffix "{BASE}"',
            f'rootdn "{ROOT_DN}"',
            f"rootpw {ROOT_PASSWORD}",
            f"directory {self.db}",
            "maxsize 33554432",
            "index objectClass eq",
            "index uid,member,uniqueMember,memberUid eq",
            "access to attrs=userPassword",
            "\tby anonymous auth",
            "\tby * none",
            "access to *",
            f'\tby dn.exact="{SERVICE_DN}" read',
            "\tby self read",
            "\tby * none",
            "overlay memberof",
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout=START_TIMEOUT):
        require(SLAPD, "slapd (Debian package slapd)")
        if not (MODULE_DIR / "memberof.la").exists() and \
                not (MODULE_DIR / "memberof.so").exists():
            missing("slapd memberof overlay module")
        if not self.conf_path.exists():
            self.write_config()
        self._log = open(self.log_path, "ab")
        urls = f"{self.uri}/ {self.ldaps_uri}/"
        self.proc = subprocess.Popen(
            [SLAPD, "-f", str(self.conf_path), "-h", urls, "-d", "stats"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True)
        self.paused = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.proc.returncode}"
                                   f":\n{self.log()[-4000:]}")
            if self._listening(self.port) and \
                    self._listening(self.ldaps_port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slapd not listening within {timeout} s:\n"
                           f"{self.log()[-4000:]}")

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def populate(self):
        ldapadd = require(LDAPADD, "ldapadd (Debian package ldap-utils)")
        r = subprocess.run(
            [ldapadd, "-x", "-H", self.uri, "-D", ROOT_DN, "-w",
             ROOT_PASSWORD, "-c"],
            input=directory_ldif(), capture_output=True, text=True,
            timeout=60, env={**os.environ, "LDAPNOINIT": "1"})
        if r.returncode != 0:
            raise RuntimeError(f"ldapadd failed ({r.returncode}):\n"
                               f"{r.stderr}\n{r.stdout}")
        return self

    def ldap(self, tool, *args, input=None):
        """Run an ldap-utils tool as the rootdn against this server."""
        exe = require(tool, f"{tool} (Debian package ldap-utils)")
        return subprocess.run(
            [exe, "-x", "-H", self.uri, "-D", ROOT_DN, "-w", ROOT_PASSWORD,
             *args], input=input, capture_output=True, text=True,
            timeout=30, env={**os.environ, "LDAPNOINIT": "1"})

    def set_password(self, uid, password):
        r = self.ldap("ldapmodify", input=textwrap.dedent(f"""\
            dn: {user_dn(uid)}
            changetype: modify
            replace: userPassword
            userPassword: {password}
            """))
        assert r.returncode == 0, r.stderr

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def bind_count(self, dn=None):
        """BIND requests received so far (for dn only, if given)."""
        n = 0
        for line in self.log().splitlines():
            i = line.find(" BIND dn=\"")
            if i < 0 or " method=" not in line:
                continue
            if dn is None:
                n += 1
                continue
            got = line[i + len(" BIND dn=\""):line.rfind("\" method=")]
            if got.lower() == dn.lower():
                n += 1
        return n

    def search_count(self, contains=""):
        """SRCH requests received so far (slapd -d stats logs each), only
        those whose log line holds contains, if given."""
        return sum(1 for line in self.log().splitlines()
                   if " SRCH base=" in line and contains in line)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def kill(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        self._close_log()

    def stop(self):
        """SIGCONT (a paused slapd cannot handle SIGTERM), SIGTERM,
        bounded wait, SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def restart(self):
        self.stop()
        return self.start()

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None


# --------------------------------------------------------------------------
# Fixtures (import them into a test module to use them)

@pytest.fixture(scope="session")
def ldap_server(tmp_path_factory, pki):
    """One populated slapd shared by the tests that leave it running."""
    s = Slapd(tmp_path_factory.mktemp("slapd"), pki, "shared")
    try:
        s.start().populate()
        yield s
    finally:
        s.stop()


@pytest.fixture
def slapd_factory(tmp_path, pki):
    """Factory: (name, cert=None, key=None) -> a started, populated Slapd
    of this test alone (to kill, pause, restart); stopped at the end."""
    servers = []

    def make(name="slapd", cert=None, key=None):
        s = Slapd(tmp_path / name, pki, name, cert=cert, key=key)
        servers.append(s)
        s.start().populate()
        return s

    yield make
    for s in servers:
        s.stop()


def ldap_config(*servers, uris=None, require_group=None, **ldap):
    """authrelay config overrides for the LDAP backend against servers
    (the first one's service secret file is used); ldap: [ldap] keys."""
    first = servers[0]
    conf = {
        "auth": {"backend": "ldap"},
        "ldap": {
            "uri": " ".join(uris if uris is not None else
                            [s.uri for s in servers]),
            "base": BASE,
            "bind_dn": SERVICE_DN,
            "bind_password_file": str(first.secret_file),
            "user_filter": "(&(objectClass=inetOrgPerson)(uid=%u))",
            "timeout": "3s",
            "address_attributes": "mail mailAlternateAddress",
        },
    }
    if require_group is not None:
        conf["auth"]["require_group"] = require_group
    conf["ldap"].update(ldap)
    return conf


# --------------------------------------------------------------------------
# The auth worker alone, driven the way the daemon drives it (a
# SOCK_SEQPACKET socketpair as its fd 3, requests and replies per
# common/auth_proto.h), to see the whole reply: canonical USER, REASON,
# ADDRESS entries.

AUTH_OK, AUTH_PERMFAIL, AUTH_TEMPFAIL = 0, 1, 2
_T_USER, _T_PASSWORD, _T_CLIENT_IP = 1, 2, 3
_T_RESULT, _T_REASON, _T_ADDRESS = 4, 5, 6


def _field(tag, data):
    return struct.pack(">BH", tag, len(data)) + data


def encode_request(rid, user, password, ip="192.0.2.1"):
    enc = (lambda s: s if isinstance(s, bytes) else s.encode())
    return (struct.pack(">BBI", 1, 1, rid) + _field(_T_USER, enc(user)) +
            _field(_T_PASSWORD, enc(password)) +
            _field(_T_CLIENT_IP, enc(ip)))


def decode_reply(buf):
    version, mtype, rid = struct.unpack(">BBI", buf[:6])
    assert (version, mtype) == (1, 2), f"reply header {buf[:6]!r}"
    rep = {"id": rid, "result": None, "user": None, "reason": "",
           "addresses": []}
    pos = 6
    while pos < len(buf):
        tag, flen = struct.unpack(">BH", buf[pos:pos + 3])
        data = buf[pos + 3:pos + 3 + flen]
        assert len(data) == flen, f"field past the end: {buf!r}"
        pos += 3 + flen
        if tag == _T_RESULT:
            rep["result"] = data[0]
        elif tag == _T_USER:
            rep["user"] = data.decode()
        elif tag == _T_REASON:
            rep["reason"] = data.decode()
        elif tag == _T_ADDRESS:
            rep["addresses"].append(data.decode())
        else:
            raise AssertionError(f"unknown tag {tag} in {buf!r}")
    return rep


class AuthWorker:
    """One authrelay-auth process; auth() -> the decoded reply."""

    def __init__(self, worker, conf_path, log_path, env):
        self.sock, child = socket.socketpair(socket.AF_UNIX,
                                             socket.SOCK_SEQPACKET)
        self.log_path = log_path
        cfd = child.fileno() if child.fileno() != 3 else os.dup(3)
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_path),
             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
            (os.POSIX_SPAWN_DUP2, cfd, 3),
        ]
        self.pid = os.posix_spawn(str(worker),
                                  [str(worker), "-c", str(conf_path)], env,
                                  file_actions=actions, setsid=True)
        if cfd != child.fileno():
            os.close(cfd)
        child.close()
        self.rid = 0
        self.returncode = None

    def auth(self, user, password, timeout=30):
        self.rid += 1
        self.sock.settimeout(timeout)
        self.sock.send(encode_request(self.rid, user, password))
        rep = decode_reply(self.sock.recv(65536))
        assert rep["id"] == self.rid, f"reply id {rep['id']} != {self.rid}"
        return rep

    def log(self):
        return Path(self.log_path).read_text(errors="replace")

    def close(self, timeout=10):
        """Close the socket (the worker exits 0 at end of file); its exit
        status, or -signal; killed after timeout."""
        self.sock.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(st)
                return self.returncode
            time.sleep(0.02)
        os.killpg(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.returncode = "killed after timeout"
        return self.returncode


@pytest.fixture
def ldap_worker(config_for_check, tmp_path):
    """Factory: (config overrides) -> a running AuthWorker; at the end
    its socket is closed and it must exit 0 without sanitizer reports."""
    import conftest
    workers = []

    def start(config):
        conftest.require_daemon()
        path, _ = config_for_check(config)
        env = conftest.base_env(conftest.sanitizer_env(False))
        w = AuthWorker(conftest.AUTHRELAY_AUTH_WORKER, path,
                       tmp_path / f"worker{len(workers)}.log", env)
        workers.append(w)
        return w

    yield start
    problems = []
    for w in workers:
        rc = w.close()
        log = w.log()
        if rc != 0:
            problems.append(f"worker exit status {rc}:\n{log}")
        for marker in ("ERROR: AddressSanitizer", "runtime error:"):
            if marker in log:
                problems.append(f"sanitizer report:\n{log}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
