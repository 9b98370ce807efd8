"""Fixtures for the authrelay integration tests.

They start the real daemon from the build tree with a generated config and
certificates, speak SMTP to it over 127.0.0.1 the way mail clients do, and
stop it again (SIGTERM, bounded wait, then SIGKILL of its process group).

Environment:
  AUTHRELAY_BUILDDIR     build tree (default: the source tree of this file)
  AUTHRELAY_SRCDIR       source tree (default: two levels above this file)
  AUTHRELAY_BIN          daemon (default: $AUTHRELAY_BUILDDIR/proxy/authrelay)
  AUTHRELAY_AUTH_WORKER  worker (default: $AUTHRELAY_BUILDDIR/pam/authrelay-auth)
  AUTHRELAY_SANITIZERS   1/0: force the sanitizer settings on/off (default:
                         detected from the daemon binary)
  AUTHRELAY_TEST_TIMEOUT seconds to wait for one SMTP reply (default 10)
  CI                     "true": a missing component fails instead of skipping
"""

import atexit
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import (SMTPRaw, check, client_tls_context, free_port,  # noqa
                     missing, require)

SRCDIR = Path(os.environ.get("AUTHRELAY_SRCDIR") or
              Path(__file__).resolve().parents[2])
BUILDDIR = Path(os.environ.get("AUTHRELAY_BUILDDIR") or SRCDIR)
AUTHRELAY_BIN = Path(os.environ.get("AUTHRELAY_BIN") or
                     BUILDDIR / "proxy" / "authrelay")
AUTHRELAY_AUTH_WORKER = Path(os.environ.get("AUTHRELAY_AUTH_WORKER") or
                             BUILDDIR / "pam" / "authrelay-auth")

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PAM_MODULES = f"{LIBDIR}/security"
PAM_MATRIX = f"{LIBDIR}/pam_wrapper/pam_matrix.so"
PAM_WRAPPER_LIB = f"{LIBDIR}/libpam_wrapper.so"
NSS_WRAPPER_LIB = f"{LIBDIR}/libnss_wrapper.so"

READY_TIMEOUT = float(os.environ.get("AUTHRELAY_READY_TIMEOUT", "10"))
STOP_TIMEOUT = 15.0     # after SIGTERM, before SIGKILL

# Users known to pam_matrix (user -> password). "locked" and "expired" have
# the right password but fail the account step; "slow" blocks in pam_exec.
USERS = {
    "alice": "Al1ce-secret",
    "bob": "b0b-Secret",
    "carol": "correct horse battery staple",
    "jörg": "pässwörd-€",
    "locked": "L0cked-secret",
    "expired": "Exp1red-secret",
    "slow": "Sl0w-secret",
    "dave": "D4ve-secret",      # in passdb, unknown to NSS (group tests)
}


SERVICE_USER = "authrelay"


def service_user():
    """The network process's user (units/authrelay.sysusers), created
    with systemd-sysusers when the suite runs as root and it is missing;
    None when not root and missing."""
    import pwd
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    if os.geteuid() != 0:
        return None
    sysusers = require("systemd-sysusers", "systemd-sysusers (systemd)")
    subprocess.run([sysusers, str(SRCDIR / "units" / "authrelay.sysusers")],
                   check=True, capture_output=True, timeout=60)
    return pwd.getpwnam(SERVICE_USER)


def binary_is_sanitized(path):
    forced = os.environ.get("AUTHRELAY_SANITIZERS")
    if forced is not None:
        return forced not in ("0", "no", "")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data


SANITIZED = binary_is_sanitized(AUTHRELAY_BIN)


def require_daemon():
    """The daemon and the worker are what is under test: their absence is
    a failure, never a skip."""
    for what, path in (("daemon", AUTHRELAY_BIN),
                       ("auth worker", AUTHRELAY_AUTH_WORKER)):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{what} not built: {path} does not exist or is not "
                        f"executable (build it, or set AUTHRELAY_BUILDDIR / "
                        f"AUTHRELAY_BIN / AUTHRELAY_AUTH_WORKER)",
                        pytrace=False)


# --------------------------------------------------------------------------
# Reporting: show the daemon's stderr under every failed test.

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in getattr(item, "_authrelay_daemons", []):
            rep.sections.append((f"authrelay stderr ({d.stderr_path})",
                                 d.log()))
            rep.sections.append((f"authrelay config ({d.conf_path})",
                                 d.conf_text))


# --------------------------------------------------------------------------
# PKI: a throwaway CA and RSA + ECDSA server certificates.

def _openssl(*args, cwd):
    openssl = require("openssl")
    r = subprocess.run([openssl, *args], cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")


class PKI:
    def __init__(self, d):
        self.dir = Path(d)
        self.ca_cert = self.dir / "ca.crt"
        self.rsa_cert = self.dir / "rsa-fullchain.pem"
        self.rsa_key = self.dir / "rsa.key"
        self.ec_cert = self.dir / "ec-fullchain.pem"
        self.ec_key = self.dir / "ec.key"
        self.other_rsa_key = self.dir / "other-rsa.key"  # matches no cert

    def client_context(self):
        return client_tls_context(self.ca_cert)

    def der(self, which):
        import ssl
        pem = (self.dir / f"{which}.crt").read_text()
        return ssl.PEM_cert_to_DER_cert(pem)


def make_pki(d):
    d = Path(d)
    ext = d / "server.ext"
    ext.write_text(textwrap.dedent("""\
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature, keyEncipherment
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:localhost, IP:127.0.0.1
        """))
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "3", "-subj",
             "/CN=authrelay test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, keyspec in (("rsa", ["-newkey", "rsa:2048"]),
                          ("ec", ["-newkey", "ec", "-pkeyopt",
                                  "ec_paramgen_curve:P-256"])):
        _openssl("req", *keyspec, "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", "/CN=localhost", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt",
                 "-CAkey", "ca.key", "-CAcreateserial", "-days", "3",
                 "-extfile", "server.ext", "-out", f"{name}.crt", cwd=d)
        (d / f"{name}-fullchain.pem").write_text(
            (d / f"{name}.crt").read_text() + (d / "ca.crt").read_text())
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
             "rsa_keygen_bits:2048", "-out", "other-rsa.key", cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return PKI(d)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls(pki):
    """A client SSLContext that trusts the test CA (hostname localhost)."""
    return pki.client_context()


# --------------------------------------------------------------------------
# A capturing smarthost (for [relay]; the relay itself is a later issue).

class Smarthost:
    """A capturing smarthost (aiosmtpd, plain SMTP on 127.0.0.1) that
    answers like Postfix, with enhanced status codes; the proxy passes its
    MAIL, RCPT and end-of-DATA replies on to the client."""

    def __init__(self):
        self.messages = []      # aiosmtpd Envelopes, in arrival order
        self.port = None
        self._controller = None
        self._queued = 0

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        self._queued += 1
        return f"250 2.0.0 Ok: queued as T{self._queued:05d}"

    def wait_for(self, marker, timeout=10):
        """The message whose content holds marker (bytes), or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for env in list(self.messages):
                if marker in env.original_content:
                    return env
            time.sleep(0.05)
        return None

    def start(self):
        from aiosmtpd.controller import Controller
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1",
                                      port=self.port, ready_timeout=10)
        self._controller.start()

    def stop(self):
        if self._controller is not None:
            self._controller.stop()


@pytest.fixture(scope="session")
def smarthost():
    if importlib.util.find_spec("aiosmtpd") is None:
        missing("python3-aiosmtpd (capturing smarthost)")
    s = Smarthost()
    s.start()
    yield s
    s.stop()


# --------------------------------------------------------------------------
# PAM through pam_wrapper + pam_matrix, NSS through nss_wrapper.

class PamFiles:
    """Service files for pam_wrapper, in one directory:

    authrelay         pam_matrix auth; account fails for "locked"/"expired"
    authrelay-slow    pam_exec runs slow.sh first: for PAM_USER=slow it
                      writes "WORKERPID SLEEPPID" to slow.pids and sleeps
    authrelay-outage  pam_matrix with a passdb that does not exist
                      (PAM_AUTHINFO_UNAVAIL: a backend outage)
    other             pam_deny (pam_wrapper's fallback)
    """

    def __init__(self, d):
        self.dir = Path(d)
        self.service_dir = self.dir / "pam.d"
        self.passdb = self.dir / "passdb"
        self.slow_script = self.dir / "slow.sh"
        self.slow_pids = self.dir / "slow.pids"
        self.nss_passwd = self.dir / "passwd"
        self.nss_group = self.dir / "group"

    def env(self, nss=False):
        clear_stale_pam_dirs()
        preload = [pam_slot_lib(), PAM_WRAPPER_LIB] + \
            ([NSS_WRAPPER_LIB] if nss else [])
        env = {
            "LD_PRELOAD": ":".join(preload),
            "PAM_WRAPPER": "1",
            "PAM_WRAPPER_SERVICE_DIR": str(self.service_dir),
        }
        if SANITIZED:
            # pam_wrapper dlopen()s libpam with RTLD_DEEPBIND, which ASan
            # rejects. pam_wrapper 1.1.4 (Debian 12) reads the switch under
            # uid_wrapper's name; later versions under their own.
            env["PAM_WRAPPER_DISABLE_DEEPBIND"] = "1"
            env["UID_WRAPPER_DISABLE_DEEPBIND"] = "1"
        if nss:
            if SANITIZED:
                env["NSS_WRAPPER_DISABLE_DEEPBIND"] = "1"
            env["NSS_WRAPPER_PASSWD"] = str(self.nss_passwd)
            env["NSS_WRAPPER_GROUP"] = str(self.nss_group)
        return env


# pam_wrapper keeps each process's service files in /tmp/pam.C (one
# character C) with a pid file. Two processes starting together could pick
# the same C (pam_slot.c stops that), and a process killed with SIGKILL
# (auth workers at shutdown) leaves its directory behind, which processes
# starting later remove themselves, several at once, racing: one can
# remove a directory another has just made. So the tests remove those
# left behind while none of theirs is starting.
_pam_slot = None


def pam_slot_lib():
    """tests/integration/pam_slot.c built once per test run, in a
    directory every uid can read (the network process preloads it too)."""
    global _pam_slot
    if _pam_slot is None:
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            missing("a C compiler (Debian package gcc) for pam_slot.so")
        d = Path(tempfile.mkdtemp(prefix="authrelay-pam-slot."))
        atexit.register(shutil.rmtree, d, True)
        d.chmod(0o755)
        out = d / "pam_slot.so"
        r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out),
                            str(Path(__file__).resolve().parent /
                                "pam_slot.c"), "-ldl"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"cannot build pam_slot.so:\n{r.stderr}"
        _pam_slot = str(out)
    return _pam_slot


def clear_stale_pam_dirs():
    """Remove the /tmp/pam.C directories whose process has ended (or
    that have had no pid file for a minute)."""
    for d in Path("/tmp").glob("pam.?"):
        try:
            text = (d / "pid").read_text().strip()
        except FileNotFoundError:
            text = ""
        except OSError:
            continue
        try:
            if text:
                if not harness.process_ended(int(text)):
                    continue
            elif time.time() - d.stat().st_mtime < 60:
                continue
        except (OSError, ValueError):
            continue
        # Renamed first, so that a directory made anew under the same
        # name meanwhile is not the one removed.
        gone = Path(tempfile.mkdtemp(prefix="pam-stale.", dir="/tmp"))
        try:
            d.rename(gone / "d")
        except OSError:
            pass
        shutil.rmtree(gone, ignore_errors=True)


def write_pam_files(d):
    for lib in (PAM_WRAPPER_LIB, PAM_MATRIX, f"{PAM_MODULES}/pam_deny.so",
                f"{PAM_MODULES}/pam_exec.so",
                f"{PAM_MODULES}/pam_succeed_if.so"):
        require(lib, f"{lib} (libpam-wrapper / libpam-modules)")
    p = PamFiles(d)
    p.service_dir.mkdir()
    p.passdb.write_text("".join(f"{u}:{pw}:authrelay\n"
                                for u, pw in USERS.items()))
    sleep = require("sleep")
    p.slow_script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        # pam_exec: runs as a child of the auth worker, so $PPID is the
        # worker. Bounded: sleeps 20 s at most.
        if [ "$PAM_USER" = slow ]; then
            echo "$PPID $$" > {p.slow_pids}.tmp
            /bin/mv {p.slow_pids}.tmp {p.slow_pids}
            exec {sleep} 20
        fi
        exit 0
        """))
    p.slow_script.chmod(0o755)
    matrix = f"{PAM_MATRIX} passdb={p.passdb}"
    account = textwrap.dedent(f"""\
        account [success=1 default=ignore] {PAM_MODULES}/pam_succeed_if.so quiet user notin locked:expired
        account requisite {PAM_MODULES}/pam_deny.so
        account required {matrix}
        """)
    (p.service_dir / "authrelay").write_text(
        f"auth required {matrix}\n" + account)
    # pam_matrix's account step wants the PAM service name in passdb, and
    # it reads only a user's first line: one passdb per service.
    slow_passdb = p.dir / "passdb-slow"
    slow_passdb.write_text("".join(f"{u}:{pw}:authrelay-slow\n"
                                   for u, pw in USERS.items()))
    (p.service_dir / "authrelay-slow").write_text(
        f"auth required {PAM_MODULES}/pam_exec.so quiet {p.slow_script}\n" +
        (f"auth required {matrix}\n" + account).replace(
            str(p.passdb), str(slow_passdb)))
    (p.service_dir / "authrelay-outage").write_text(
        f"auth required {PAM_MATRIX} passdb={p.dir}/no-such-passdb\n"
        f"account required {PAM_MATRIX} passdb={p.dir}/no-such-passdb\n")
    (p.service_dir / "other").write_text(
        f"auth required {PAM_MODULES}/pam_deny.so\n"
        f"account required {PAM_MODULES}/pam_deny.so\n")
    # NSS (nss_wrapper): alice is in mail-senders, bob is not, dave is not
    # known at all.
    # The supervisor looks up the network process's user through NSS
    # too: the wrapper's files must know it.
    svc = service_user()
    svc_pw = (f"{svc.pw_name}:x:{svc.pw_uid}:{svc.pw_gid}::/nonexistent:"
              f"/usr/sbin/nologin\n") if svc else ""
    svc_gr = f"{svc.pw_name}:x:{svc.pw_gid}:\n" if svc else ""
    p.nss_passwd.write_text(textwrap.dedent("""\
        alice:x:1001:1001:Alice:/nonexistent:/usr/sbin/nologin
        bob:x:1002:1002:Bob:/nonexistent:/usr/sbin/nologin
        carol:x:1003:1003:Carol:/nonexistent:/usr/sbin/nologin
        """) + svc_pw)
    p.nss_group.write_text(textwrap.dedent("""\
        alice:x:1001:
        bob:x:1002:
        carol:x:1003:
        staff:x:1500:bob
        mail-senders:x:2000:alice,carol
        """) + svc_gr)
    return p




# --------------------------------------------------------------------------
# sd_notify receiver

class NotifySocket:
    """The unix datagram socket NOTIFY_SOCKET points to."""

    def __init__(self):
        # sun_path is at most 107 octets: keep it short, outside tmp_path.
        self.dir = tempfile.mkdtemp(prefix="ar-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []      # each a list of "KEY=VALUE" lines

    def drain(self, timeout=0.0):
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            self.sock.settimeout(remaining if remaining > 0 else 0.0)
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, socket.timeout):
                return
            self.messages.append(data.decode("utf-8", "replace")
                                 .strip("\n").split("\n"))
            if remaining <= 0:
                continue

    def seen(self, assignment):
        return any(assignment in m for m in self.messages)

    def wait_for(self, assignment, timeout, alive=lambda: True):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.seen(assignment):
                return True
            if not alive():
                self.drain()
                return self.seen(assignment)
            self.sock.settimeout(min(0.1, max(0.001,
                                              deadline - time.monotonic())))
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, socket.timeout):
                continue
            self.messages.append(data.decode("utf-8", "replace")
                                 .strip("\n").split("\n"))
        return self.seen(assignment)

    def close(self):
        self.sock.close()
        for p in (self.path,):
            try:
                os.unlink(p)
            except OSError:
                pass
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


# --------------------------------------------------------------------------
# Config files

def format_config(conf):
    """dict of section -> dict of key -> value (str, int, bool, list for a
    repeatable key, None to leave the key out) -> INI text."""
    out = []
    for section, keys in conf.items():
        if keys is None:
            continue
        out.append(f"[{section}]")
        for key, value in keys.items():
            if value is None:
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if isinstance(v, bool):
                    v = "yes" if v else "no"
                out.append(f"{key} = {v}")
        out.append("")
    return "\n".join(out)


def merge_config(base, overrides):
    conf = {s: dict(k) for s, k in base.items()}
    for section, keys in (overrides or {}).items():
        if keys is None:
            conf.pop(section, None)
            continue
        conf.setdefault(section, {})
        for key, value in keys.items():
            if value is None:
                conf[section].pop(key, None)
            else:
                conf[section][key] = value
    return conf


MAX_MESSAGE_SIZE = 10485760     # bytes; given bare so no unit is assumed
MAX_RECIPIENTS = 5


def base_config(pki, smarthost_port, starttls_port, tls_port):
    return {
        "server": {
            "hostname": "relay.test.example",
            "listen": [f"127.0.0.1:{starttls_port} starttls",
                       f"127.0.0.1:{tls_port} tls"],
            "max_message_size": MAX_MESSAGE_SIZE,
            "max_recipients": MAX_RECIPIENTS,
            "command_timeout": "30s",
            "data_timeout": "30s",
            "shutdown_timeout": "5s",
            "threads": 2,
        },
        "tls": {
            "cert": [str(pki.rsa_cert), str(pki.ec_cert)],
            "key": [str(pki.rsa_key), str(pki.ec_key)],
            "min_version": "TLSv1.2",
            "handshake_timeout": "10s",
        },
        "auth": {
            "backend": "pam",
            "mechanisms": "PLAIN LOGIN",
            "cache_ttl": "0",
            "failure_delay": "0",
            "worker_path": str(AUTHRELAY_AUTH_WORKER),
            "workers": 2,
            "worker_max_requests": 100,
            "worker_timeout": "30s",
        },
        "pam": {
            "service": "authrelay",
            "address_domain": "example.com",
        },
        "relay": {
            "smarthost": f"127.0.0.1:{smarthost_port}",
            "tls": "none",
            "tls_verify": "no",
            # One smarthost connection per client session, as the tests
            # that count connections and QUITs expect; the cache has
            # its own (test_relay_connection_cache.py).
            "connection_cache": "0",
        },
        # The sender check has its own tests (test_policy_*.py); the
        # others send whatever From: they like.
        "policy": {
            "sender_check": "off",
        },
    }


# --------------------------------------------------------------------------
# The daemon

class Daemon:
    def __init__(self, workdir, conf_path, conf_text, argv, env,
                 starttls_port, tls_port, notify, name):
        self.workdir = workdir
        self.conf_path = conf_path
        self.conf_text = conf_text
        self.argv = argv
        self.env = env
        self.starttls_port = starttls_port
        self.tls_port = tls_port
        self.notify = notify
        self.name = name
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc = None
        self.pgid = None
        self.returncode = None
        self.expect_exit = 0    # what stop() asserts; None: anything
        self.tls_context = None

    @property
    def pid(self):
        """The supervisor: the process started (parent of the rest)."""
        return self.proc.pid

    @property
    def net_pid(self):
        """The network process: sessions, logs of sessions, threads."""
        if getattr(self, "_net_pid", None) is None or \
                not os.path.exists(f"/proc/{self._net_pid}"):
            self._net_pid = self.network_pid()
        return self._net_pid

    def log(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv, env=self.env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._stderr,
                                     stderr=self._stderr,
                                     cwd=self.workdir,
                                     start_new_session=True)
        self.pgid = self.proc.pid

    def network_pid(self, timeout=5.0):
        """The network process: the supervisor's child titled
        "authrelay: network"."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in harness.children_of(self.pid):
                if harness.cmdline(p)[:1] == ["authrelay: network"]:
                    return p
            time.sleep(0.02)
        pytest.fail(f"no network process under supervisor {self.pid}",
                    pytrace=False)

    def check_privileges(self):
        """As root: the network process holds no privilege (issue: the
        process that reads client bytes)."""
        problems = harness.privilege_problems(self.network_pid(),
                                              service_user())
        if problems:
            self.expect_exit = None
            pytest.fail("network process privileges: " +
                        "; ".join(problems), pytrace=False)

    def wait_ready(self, timeout=READY_TIMEOUT):
        if not self.notify.wait_for("READY=1", timeout, self.alive):
            if self.alive():
                self.kill()
                why = f"did not send READY=1 within {timeout} s"
            else:
                why = (f"exited with status {self.proc.returncode} before "
                       f"READY=1")
            self.expect_exit = None
            pytest.fail(f"authrelay {why}\n--- command: {self.argv}\n"
                        f"--- stderr:\n{self.log()}\n--- config:\n"
                        f"{self.conf_text}", pytrace=False)

    def kill(self):
        """SIGKILL the daemon and everything in its process group."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM, bounded wait, SIGKILL; kill leftovers in the group.
        Returns the problems found (empty when all is well)."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(STOP_TIMEOUT) is None:
                problems.append(f"did not exit within {STOP_TIMEOUT} s of "
                                f"SIGTERM: killed")
                self.kill()
        self.returncode = self.proc.returncode
        # Workers and their children (pam_exec scripts) share the group.
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._stderr.close()
        self.notify.drain()
        if self.expect_exit is not None and \
                self.returncode != self.expect_exit:
            problems.append(f"exit status {self.returncode}, want "
                            f"{self.expect_exit}")
        # ASan and UBSan reports, from the daemon or any worker. (Leak
        # reports count through the daemon's exit status.)
        log = self.log()
        for marker in ("ERROR: AddressSanitizer", "runtime error:"):
            if marker in log:
                problems.append(f"sanitizer report in stderr ({marker!r})")
        return problems

    def wait_group_gone(self, timeout):
        """Bounded wait for the last of the process group to end."""
        deadline = time.monotonic() + timeout
        while self.pgid is not None and time.monotonic() < deadline:
            try:
                os.killpg(self.pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.02)

    # -- client conveniences -------------------------------------------

    def connect(self, implicit_tls=False, **kw):
        """A raw SMTP client on the STARTTLS port (greeting read), or on
        the implicit TLS port (handshake done, greeting read)."""
        if implicit_tls:
            return SMTPRaw(self.tls_port, tls_context=self.tls_context, **kw)
        return SMTPRaw(self.starttls_port, **kw)

    def session(self, implicit_tls=False, ehlo="client.example.org"):
        """Connected, TLS up, EHLO sent: ready for AUTH."""
        c = self.connect(implicit_tls=implicit_tls)
        if not implicit_tls:
            c.ehlo(ehlo)
            c.starttls(self.tls_context)
        c.ehlo(ehlo)
        return c

    def authed(self, user="alice", password=None, implicit_tls=False):
        """A session authenticated as user (235 asserted)."""
        c = self.session(implicit_tls=implicit_tls)
        r = c.auth_plain(user, USERS[user] if password is None else password)
        check(r, 235, "2.7.0", what=f"AUTH PLAIN as {user}")
        return c

    def worker_pids(self):
        return [p for p in harness.children_of(self.pid)
                if any("authrelay-auth" in a for a in harness.cmdline(p)[:1])]


def base_env(extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LD_PRELOAD", "NOTIFY_SOCKET", "LISTEN_",
                                "JOURNAL_STREAM", "PAM_WRAPPER",
                                "NSS_WRAPPER", "WATCHDOG_"))}
    env.update(extra)
    return env


def sanitizer_env(preloading):
    if not SANITIZED:
        return {}
    opts = ["abort_on_error=0", "print_stacktrace=1"]
    if preloading:
        # A preloaded wrapper comes before the ASan runtime in the link
        # order, and pam_wrapper/PAM modules' leaks are not ours to find.
        opts += ["verify_asan_link_order=0", "detect_leaks=0"]
    return {"ASAN_OPTIONS": ":".join(opts),
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


@pytest.fixture
def authrelay(request, tmp_path, pki, smarthost):
    """Factory: authrelay(config=None, pam="wrapper"|"system", nss=False,
    socket_activation=None|("submission","submissions"), env=None,
    wait_ready=True, activation_host="127.0.0.1") -> a running Daemon
    (READY=1 received). activation_host "[::]" makes the activated
    sockets dual-stack, as the shipped .socket units are.

    config: overrides merged into the base config (section -> key -> value,
    None removes a key or a whole section). The daemon is stopped with
    SIGTERM at the end of the test and must exit 0."""
    daemons = []
    request.node._authrelay_daemons = daemons

    def start(config=None, pam="wrapper", nss=False, socket_activation=None,
              env=None, wait_ready=True, activation_host="127.0.0.1"):
        require_daemon()
        starttls_port, tls_port = free_port(), free_port()
        conf = merge_config(base_config(pki, smarthost.port, starttls_port,
                                        tls_port), config)
        name = f"authrelay{len(daemons)}"
        conf_text = format_config(conf)
        conf_path = tmp_path / f"{name}.conf"
        conf_path.write_text(conf_text)

        extra = {}
        pam_files = None
        if pam == "wrapper":
            pam_dir = tmp_path / f"pam{len(daemons)}"
            pam_dir.mkdir()
            pam_files = write_pam_files(pam_dir)
            extra.update(pam_files.env(nss=nss))
        elif nss:
            raise ValueError("nss_wrapper needs pam='wrapper'")
        elif SANITIZED:
            # ASan intercepts crypt(); when libcrypt only arrives later with
            # pam_unix.so, the interceptor calls a NULL "real" crypt and the
            # worker dies. Loading libcrypt up front avoids that.
            extra["LD_PRELOAD"] = f"{LIBDIR}/libcrypt.so.1"
        extra.update(sanitizer_env(preloading="LD_PRELOAD" in extra))
        extra.update(env or {})
        notify = NotifySocket()
        extra["NOTIFY_SOCKET"] = notify.path

        argv = [str(AUTHRELAY_BIN), "-c", str(conf_path)]
        activation_ports = None
        if socket_activation:
            ssa = require("systemd-socket-activate",
                          "systemd-socket-activate (Debian package systemd)")
            activation_ports = {n: free_port() for n in socket_activation}
            cmd = [ssa]
            for n in socket_activation:
                cmd += ["-l", f"{activation_host}:{activation_ports[n]}"]
            cmd.append("--fdname=" + ":".join(socket_activation))
            # systemd-socket-activate passes on only TERM PATH USER HOME
            # and what -E names.
            for k, v in extra.items():
                cmd += ["-E", f"{k}={v}"]
            argv = cmd + argv

        # If pytest itself is killed (no teardown), the kernel kills the
        # daemon: setpriv sets the parent-death signal and execs, so the
        # PID stays the daemon's (and LISTEN_PID stays right).
        setpriv = shutil.which("setpriv")
        if setpriv:
            argv = [setpriv, "--pdeathsig", "KILL", "--"] + argv

        d = Daemon(tmp_path, conf_path, conf_text, argv, base_env(extra),
                   starttls_port, tls_port, notify, name)
        d.tls_context = pki.client_context()
        d.config = conf
        d.activation_ports = activation_ports
        d.pam_files = pam_files
        daemons.append(d)
        d.start()
        if socket_activation:
            # systemd-socket-activate execs the daemon only on the first
            # connection attempt: make one, and expect it to be served.
            first = socket_activation[0]
            deadline = time.monotonic() + READY_TIMEOUT
            trigger = None
            while trigger is None and time.monotonic() < deadline:
                try:
                    trigger = socket.create_connection(
                        ("127.0.0.1", activation_ports[first]), timeout=2)
                except ConnectionRefusedError:
                    if not d.alive():
                        break
                    time.sleep(0.05)
            if trigger is None:
                d.expect_exit = None
                pytest.fail("systemd-socket-activate did not listen:\n" +
                            d.log(), pytrace=False)
            d.trigger = trigger
        if wait_ready:
            d.wait_ready()
            if os.geteuid() == 0:
                d.check_privileges()
        return d

    yield start

    problems = []
    for d in daemons:
        trig = getattr(d, "trigger", None)
        if trig is not None:
            trig.close()
        p = d.stop()
        d.notify.close()
        d.wait_group_gone(2.0)
        if p:
            problems.append(f"{d.name} ({' '.join(d.argv[-3:])}): " +
                            "; ".join(p) + f"\n--- stderr:\n{d.log()}")
    clear_stale_pam_dirs()
    if problems:
        pytest.fail("daemon teardown:\n" + "\n".join(problems),
                    pytrace=False)


def run_check(conf_path, timeout=30, extra_args=()):
    """authrelay -t -c FILE -> CompletedProcess (text)."""
    require_daemon()
    return subprocess.run([str(AUTHRELAY_BIN), "-t", "-c", str(conf_path),
                           *extra_args],
                          env=base_env(sanitizer_env(False)),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def run_preflight(path, env=None, user=None, password=None, sender=None):
    """authrelay --check [--check-user USER [--from SENDER]] -c PATH, the
    password on standard input -> CompletedProcess with .lines, a list
    of (level, text), level "ok", "warn" or "FAIL"."""
    env = env or {}
    require_daemon()
    argv = [str(AUTHRELAY_BIN), "--check", "-c", str(path)]
    if user is not None:
        argv += ["--check-user", user]
    if sender is not None:
        argv += ["--from", sender]
    r = subprocess.run(argv, input=(password or "") + "\n",
                       capture_output=True, text=True, timeout=120,
                       env=base_env({**env, **sanitizer_env(
                           "LD_PRELOAD" in env)}))
    # "ok   TEXT", "warn TEXT", "FAIL TEXT"
    r.lines = [(line[:4].strip(), line[5:]) for line in r.stdout.splitlines()]
    for level, _ in r.lines:
        assert level in ("ok", "warn", "FAIL"), \
            f"not a check line: {level!r}\n{r.stdout}"
    return r


@pytest.fixture
def config_for_check(tmp_path, pki, smarthost):
    """Factory: (overrides) -> (path, text) of a config file, not started."""
    def make(config=None, text=None):
        conf = merge_config(base_config(pki, smarthost.port, free_port(),
                                        free_port()), config)
        body = text if text is not None else format_config(conf)
        path = tmp_path / f"check{len(list(tmp_path.glob('check*')))}.conf"
        path.write_text(body)
        return path, body
    return make
