"""Privilege separation: the process that reads client bytes holds no
privilege.

authrelay started as root is a supervisor (root) that reads the config and
the secrets, forks the network process (user authrelay: no capability in
any set, no_new_privs, a seccomp filter) and spawns auth workers when the
network process asks (root with PAM, user authrelay with LDAP). Every
daemon the suite starts is checked for the network process's privileges
right after READY=1 (conftest.Daemon.check_privileges); these tests show
the rest: what ps shows, what the network user can open, who dies with
whom, certificates on reload, and the systemd layout with the network
process and its supervisor in separate units.
"""

import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import harness  # noqa: E402
from conftest import (AUTHRELAY_AUTH_WORKER, AUTHRELAY_BIN, BUILDDIR, SRCDIR, USERS, base_env, free_port,
                      require, sanitizer_env, service_user)
from harness import SMTPRaw, check
from slapd import USERS as LDAP_USERS
from slapd import ldap_config, ldap_server  # noqa: F401

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="privilege separation needs root")


def wait_gone(pids, timeout=10):
    """The pids among pids still alive after timeout (bounded wait)."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if os.path.exists(f"/proc/{p}")
                 and harness.proc_status(p).get("State", "")[:1] != "Z"]
        time.sleep(0.05)
    return alive


def ps(pid):
    """(user, command line) as `ps -o user=,cmd=` shows them."""
    out = subprocess.run(["ps", "-o", "user:32=,cmd=", "-p", str(pid)],
                         capture_output=True, text=True, timeout=10).stdout
    user, _, cmd = out.strip().partition(" ")
    return user, cmd.strip()


@pytest.fixture
def secrets_dir():
    """A directory the network user may enter (0711), for secret files
    that only root may read (0600): an open() that fails there fails on
    the file's own mode, not on the directory's."""
    d = Path(tempfile.mkdtemp(prefix="authrelay-secrets-", dir="/tmp"))
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def root_only(path, data):
    path.write_bytes(data)
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    return path


# -- what ps shows ---------------------------------------------------------

def test_ps_shows_supervisor_network_and_pam_workers(authrelay):
    d = authrelay()
    with d.session() as c:
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
    assert ps(d.pid) == ("root", "authrelay: supervisor"), ps(d.pid)
    assert ps(d.net_pid) == ("authrelay", "authrelay: network"), \
        ps(d.net_pid)
    workers = d.worker_pids()
    assert workers, "no auth worker under the supervisor after an AUTH"
    for w in workers:
        user, cmd = ps(w)
        # PAM (pam_unix, sssd, winbind) may need root.
        assert user == "root", f"PAM worker {w} runs as {user}"
        assert cmd.endswith("authrelay-auth -b 4"), cmd
    # The network process has no children of its own.
    assert harness.children_of(d.net_pid) == []


def test_ldap_workers_run_unprivileged(authrelay, ldap_server):
    d = authrelay(config=ldap_config(ldap_server), pam="system")
    with d.session() as c:
        check(c.auth_plain("alice", LDAP_USERS["alice"]["password"]), 235,
              "2.7.0")
    workers = d.worker_pids()
    assert workers, "no auth worker after an LDAP AUTH"
    for w in workers:
        problems = harness.privilege_problems(w, service_user())
        # Workers install no seccomp filter of their own.
        problems = [p for p in problems if not p.startswith("Seccomp")]
        assert problems == [], f"LDAP worker {w}: {problems}"


def test_ldap_worker_in_a_root_only_directory(authrelay, ldap_server,
                                              tmp_path):
    """The worker program may lie where only root can look (a 0700
    directory): the supervisor opens it before the worker drops to the
    network user, who could not even find it by name."""
    hidden = tmp_path / "root-only"
    hidden.mkdir()
    os.chmod(hidden, 0o700)
    worker = hidden / "authrelay-auth"
    shutil.copy2(AUTHRELAY_AUTH_WORKER, worker)
    assert open_as_service_user([worker])[str(worker)] == \
        "Permission denied"
    cfg = ldap_config(ldap_server)
    cfg.setdefault("auth", {})["worker_path"] = str(worker)
    d = authrelay(config=cfg, pam="system")
    with d.session() as c:
        check(c.auth_plain("alice", LDAP_USERS["alice"]["password"]), 235,
              "2.7.0")
    with d.session() as c:
        check(c.auth_plain("alice", "wrong"), 535, "5.7.8")
    workers = d.worker_pids()
    assert workers, "no auth worker after an LDAP AUTH"
    for w in workers:
        assert ps(w)[0] == service_user().pw_name, ps(w)


# -- secrets ---------------------------------------------------------------

OPEN_AS = r"""
import json, sys
out = {}
for p in sys.argv[1:]:
    try:
        open(p, "rb").close()
        out[p] = "opened"
    except OSError as e:
        out[p] = e.strerror
print(json.dumps(out))
"""


def open_as_service_user(paths):
    """Try to open each path as the network process's user (uid, gid, no
    supplementary groups): path -> "opened" or the error."""
    u = service_user()
    r = subprocess.run(["/usr/bin/python3", "-c", OPEN_AS, *map(str, paths)],
                       user=u.pw_uid, group=u.pw_gid, extra_groups=[],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_network_user_cannot_open_keys_or_secrets(authrelay, pki,
                                                  secrets_dir, ldap_server):
    """The supervisor reads root-only files and hands their content over;
    the network process could not open them itself, and keeps no
    descriptor to them (nor to the bundle they came in)."""
    key = root_only(secrets_dir / "rsa.key", pki.rsa_key.read_bytes())
    cert = secrets_dir / "rsa.pem"
    cert.write_bytes(pki.rsa_cert.read_bytes())
    os.chmod(cert, 0o644)
    relay_secret = root_only(secrets_dir / "relay.secret", b"relay-pw\n")
    conf = ldap_config(ldap_server)
    bind_secret = root_only(
        secrets_dir / "bind.secret",
        Path(conf["ldap"]["bind_password_file"]).read_bytes())
    conf["ldap"]["bind_password_file"] = str(bind_secret)
    conf["tls"] = {"cert": [str(cert)], "key": [str(key)]}
    conf["relay"] = {"auth_user": "proxy@example.com",
                     "auth_password_file": str(relay_secret)}
    d = authrelay(config=conf, pam="system")
    with d.session(implicit_tls=True) as c:
        check(c.auth_plain("alice", LDAP_USERS["alice"]["password"]), 235,
              "2.7.0", "AUTH through the LDAP worker")

    secrets = [key, relay_secret, bind_secret, Path("/etc/shadow")]
    got = open_as_service_user(secrets + [cert])
    assert got[str(cert)] == "opened", got     # the test itself works
    for p in secrets:
        assert got[str(p)] == "Permission denied", \
            f"{p} as {service_user().pw_name}: {got[str(p)]}"

    links = []
    for fd in os.listdir(f"/proc/{d.net_pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{d.net_pid}/fd/{fd}"))
        except OSError:
            pass
    for p in secrets:
        assert str(p) not in links, f"the network process holds {p} open"
    assert not [l for l in links if "authrelay-bundle" in l], \
        f"the network process keeps its bundle open: {links}"
    # The bind secret went to the workers only, never to the network
    # process: its memory does not hold it (checked on /proc/PID/mem by
    # root, as a debugger would).
    assert not memory_holds(d.net_pid, bind_secret.read_bytes().strip())


def memory_holds(pid, needle):
    """Does the writable memory of pid contain needle?"""
    found = False
    with open(f"/proc/{pid}/maps") as maps, \
            open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if not m or "rw" not in m.group(3):
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            if end - start > 512 << 20:
                continue
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            if needle in chunk:
                found = True
                break
    return found


# -- who dies with whom ----------------------------------------------------

def test_killing_the_network_process_leaves_nothing(authrelay):
    """SIGKILL of the network process: the supervisor kills every worker
    and exits non-zero (under systemd: Restart=on-failure)."""
    d = authrelay()
    with d.session() as c:
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
    workers = d.worker_pids()
    assert workers
    d.expect_exit = 1
    os.kill(d.net_pid, signal.SIGKILL)
    assert d.wait_exit(15) == 1, "the supervisor did not exit 1"
    assert wait_gone(workers) == [], "auth workers left behind"


def test_killing_the_supervisor_takes_everything_down(authrelay):
    d = authrelay()
    with d.session() as c:
        check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
    workers, net = d.worker_pids(), d.net_pid
    d.expect_exit = -signal.SIGKILL
    os.kill(d.pid, signal.SIGKILL)
    assert wait_gone([net] + workers, timeout=15) == [], \
        "network process or workers outlived the supervisor"


# -- reload ----------------------------------------------------------------

def make_cert(d, name, cn="relay.test.example"):
    openssl = require("openssl")
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-days", "2", "-subj", f"/CN={cn}", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True,
                   timeout=120)
    os.chmod(key, 0o600)
    return cert, key


def fingerprint(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s) as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def test_sighup_with_a_new_certificate(authrelay, secrets_dir):
    """The supervisor re-reads the root-only key on SIGHUP: new handshakes
    show the new certificate, a session in progress goes on."""
    cert, key = make_cert(secrets_dir, "live")
    old = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())) \
        .hexdigest()
    d = authrelay(config={"tls": {"cert": [str(cert)], "key": [str(key)]}})
    assert fingerprint(d.tls_port) == old
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = SMTPRaw(d.tls_port, tls_context=ctx)
    c.ehlo("client.example.org")
    check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")

    new_cert, new_key = make_cert(secrets_dir, "next")
    shutil.copyfile(new_cert, cert)
    shutil.copyfile(new_key, key)
    new = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())) \
        .hexdigest()
    assert new != old
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    got = old
    while got != new and time.monotonic() < deadline:
        time.sleep(0.1)
        got = fingerprint(d.tls_port)
    assert got == new, "new handshakes still show the old certificate"
    # The old session, on the old settings, still works.
    c.expect("NOOP", 250, "2.0.0")
    check(c.cmd("MAIL FROM:<alice@example.com>"), 250)
    c.close()


# -- the systemd layout ----------------------------------------------------

UNITS = BUILDDIR / "units"


def unit_exposure(unit):
    sa = require("systemd-analyze", "systemd-analyze (systemd)")
    r = subprocess.run([sa, "security", "--offline=true", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    assert m, f"no exposure level from systemd-analyze:\n{r.stdout}\n" \
              f"{r.stderr}"
    return float(m.group(1))


def test_network_unit_is_unprivileged_and_tight():
    text = (UNITS / "authrelay.service").read_text()
    for line in ("User=authrelay", "CapabilityBoundingSet=\n",
                 "NoNewPrivileges=yes", "PrivateUsers=yes",
                 "ProtectProc=invisible", "StartLimitBurst=",
                 "--supervisor-socket /run/authrelay/supervisor.sock"):
        assert line in text, f"authrelay.service lacks {line!r}"
    level = unit_exposure(UNITS / "authrelay.service")
    assert level <= 2.0, f"authrelay.service exposure {level}, want <= 2.0"
    sup = (UNITS / "authrelay-supervisor@.service").read_text()
    assert "ExecStart=" in sup and "--supervisor" in sup
    sock = (SRCDIR / "units" / "authrelay-supervisor.socket").read_text()
    for line in ("ListenSequentialPacket=/run/authrelay/supervisor.sock",
                 "Accept=yes", "SocketUser=authrelay", "SocketMode=0600"):
        assert line in sock, f"authrelay-supervisor.socket lacks {line!r}"


class SplitUnits:
    """authrelay.service and authrelay-supervisor@.service the way
    systemd runs them, with systemd-socket-activate standing in for
    systemd: the supervisor socket (SOCK_SEQPACKET, Accept=yes) with a
    root supervisor per connection, and the network process started as
    the authrelay user with the two listening sockets passed by name."""

    def __init__(self, tmp_path, conf_path, env):
        self.ssa = require("systemd-socket-activate",
                           "systemd-socket-activate (systemd)")
        self.dir = Path(tempfile.mkdtemp(prefix="authrelay-run-",
                                         dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.sock = self.dir / "supervisor.sock"
        self.conf_path = conf_path
        self.env = env
        self.log_path = tmp_path / "split.log"
        self.log = open(self.log_path, "wb")
        self.ports = {"submission": free_port(), "submissions": free_port()}
        self.sup = self.net = None
        # The network unit runs as the service user, who may not be able
        # to reach the build tree (a 0700 work directory): its own copy
        # of the program, as /usr/sbin/authrelay would be.
        self.net_bin = self.dir / "authrelay"
        shutil.copy2(AUTHRELAY_BIN, self.net_bin)
        os.chmod(self.net_bin, 0o755)

    def start_supervisor(self):
        cmd = [self.ssa, "--seqpacket", "--accept", "-l", str(self.sock)]
        for k, v in self.env.items():
            cmd += ["-E", f"{k}={v}"]
        cmd += [str(AUTHRELAY_BIN), "--supervisor", "-c",
                str(self.conf_path)]
        self.sup = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                    start_new_session=True)
        assert harness.wait_for_file(self.sock, 10), "no supervisor socket"
        u = service_user()
        os.chown(self.sock, u.pw_uid, u.pw_gid)
        os.chmod(self.sock, 0o600)

    def start_network(self, notify_path):
        u = service_user()
        # No PAM here: pam_wrapper is for the supervisor's workers.
        env = dict(sanitizer_env(preloading=False),
                   NOTIFY_SOCKET=notify_path)
        cmd = [self.ssa]
        for n in ("submission", "submissions"):
            cmd += ["-l", f"127.0.0.1:{self.ports[n]}"]
        cmd.append("--fdname=submission:submissions")
        for k, v in env.items():
            cmd += ["-E", f"{k}={v}"]
        cmd += [str(self.net_bin), "--supervisor-socket", str(self.sock)]
        # What systemd does for User=authrelay, CapabilityBoundingSet=
        # (empty), NoNewPrivileges=yes.
        setpriv = require("setpriv", "setpriv (util-linux)")
        cmd = [setpriv, f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}",
               "--clear-groups", "--bounding-set=-all", "--inh-caps=-all",
               "--no-new-privs", "--"] + cmd
        self.net = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                    start_new_session=True)
        # systemd-socket-activate execs the daemon on the first
        # connection attempt: make one (it is then served).
        deadline = time.monotonic() + 10
        self.trigger = None
        while self.trigger is None and time.monotonic() < deadline:
            try:
                self.trigger = socket.create_connection(
                    ("127.0.0.1", self.ports["submission"]), timeout=2)
            except ConnectionRefusedError:
                time.sleep(0.05)
        assert self.trigger is not None, "no listener"

    def text(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if getattr(self, "trigger", None) is not None:
            self.trigger.close()
        for p in (self.net, self.sup):
            if p is None:
                continue
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def split_units(request, tmp_path, pki, smarthost):
    from conftest import (NotifySocket, base_config, format_config,
                          merge_config, write_pam_files)
    conf = merge_config(base_config(pki, smarthost.port, free_port(),
                                    free_port()), {"server": {"listen": None}})
    conf_path = tmp_path / "split.conf"
    conf_path.write_text(format_config(conf))
    pam_dir = tmp_path / "pam"
    pam_dir.mkdir()
    env = write_pam_files(pam_dir).env()
    env.update(sanitizer_env(preloading=True))
    units = SplitUnits(tmp_path, conf_path, env)
    units.notify = NotifySocket()
    # The network process runs as the service user.
    os.chmod(units.notify.dir, 0o755)
    os.chmod(units.notify.path, 0o777)
    yield units
    units.stop()
    units.notify.close()


def test_split_units_serve_unprivileged(split_units):
    u = split_units
    u.start_supervisor()
    u.start_network(u.notify.path)
    assert u.notify.wait_for("READY=1", 20, lambda: u.net.poll() is None), \
        f"no READY=1 from the network unit:\n{u.text()}"
    # systemd-socket-activate execs the daemon in place: the network
    # process is u.net.pid itself, running as authrelay.
    net = u.net.pid
    assert harness.cmdline(net)[:2] == [str(u.net_bin),
                                        "--supervisor-socket"]
    problems = harness.privilege_problems(net, service_user())
    assert problems == [], problems

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = SMTPRaw(u.ports["submissions"], tls_context=ctx)
    c.ehlo("client.example.org")
    check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0",
          "AUTH through a worker of the supervisor unit")
    c.close()
    # The worker is the supervisor instance's child, not the network's.
    assert harness.children_of(net) == []
    instances = harness.children_of(u.sup.pid)
    assert len(instances) == 1, instances
    workers = [p for p in harness.children_of(instances[0])
               if "authrelay-auth" in " ".join(harness.cmdline(p))]
    assert workers, "no worker under the supervisor instance"

    # Reload: SIGHUP to the network unit's main process.
    os.kill(net, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while "configuration reloaded" not in u.text() and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert "configuration reloaded" in u.text(), u.text()

    # The network unit stops: its supervisor instance and workers end.
    os.kill(net, signal.SIGKILL)
    assert wait_gone(instances + workers, timeout=15) == [], \
        f"supervisor instance or workers outlived the network:\n{u.text()}"


def test_supervisor_refuses_other_users(split_units):
    """Only the service user (or root) gets secrets and workers."""
    u = split_units
    u.start_supervisor()
    os.chmod(u.sock, 0o666)     # let nobody reach it, to see the refusal
    probe = ("import socket,sys\n"
             "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\n"
             "s.connect(sys.argv[1]); s.settimeout(20)\n"
             "print(len(s.recv(2048)))\n")
    nobody = pwd.getpwnam("nobody")
    r = subprocess.run(["/usr/bin/python3", "-c", probe, str(u.sock)],
                       user=nobody.pw_uid, group=nobody.pw_gid,
                       extra_groups=[], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0", \
        f"a foreign peer got {r.stdout.strip()} octets, want EOF"
    deadline = time.monotonic() + 10
    while "refusing a peer" not in u.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "refusing a peer with uid" in u.text(), u.text()
