"""authrelay --check: the pre-flight against real components (the scripted
smarthost, slapd, pam_wrapper, real auth workers). One `ok`/`warn`/`FAIL`
line per check on standard output; exit 0 only when no line is FAIL.
Each fault gives its own FAIL (or warn) line; a healthy setup gives only
ok lines."""

import datetime
import re
import subprocess

import pytest

from conftest import (AUTHRELAY_BIN, base_config, base_env, format_config,
                      merge_config, require_daemon, run_preflight,
                      sanitizer_env, write_pam_files)
from harness import free_port
from slapd import (SERVICE_DN, USERS as LDAP_USERS, group_dn,  # noqa: F401
                   ldap_config, ldap_server, slapd_factory)
from smarthost import relay_config

pytest_plugins = ["smarthost"]

RELAY_USER = "relay-user"
RELAY_PASSWORD = "relay-p4ss"
HOSTNAME = "mail.preflight.test"

# --------------------------------------------------------------------------
# Certificates of our own (the session PKI's expire in 3 days: a warning)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA and a factory of leaves it signs: make(name, days_left,
    names=(HOSTNAME,), chain=True) -> (cert path, key path)."""
    crypto = pytest.importorskip("cryptography")  # noqa: F841
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("preflight-pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            "preflight test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name)
          .issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1000))
          .not_valid_after(now + datetime.timedelta(days=1000))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)

    def make(name, days_left, names=(HOSTNAME,), chain=True):
        key = ec.generate_private_key(ec.SECP256R1())
        after = now + datetime.timedelta(days=days_left, hours=1)
        before = min(now, after) - datetime.timedelta(days=30)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(
                    NameOID.COMMON_NAME, names[0])]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(before).not_valid_after(after)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(n) for n in names]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        cp, kp = d / f"{name}.pem", d / f"{name}.key"
        cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM) +
                       (ca_pem if chain else b""))
        kp.write_bytes(key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        kp.chmod(0o600)
        return cp, kp

    return make


# --------------------------------------------------------------------------
# Running it


def report(r):
    return f"exit {r.returncode}\n--- stdout:\n{r.stdout}--- stderr:\n" \
           f"{r.stderr}"


def assert_line(r, level, pattern):
    rx = re.compile(pattern)
    got = [t for lv, t in r.lines if lv == level and rx.search(t)]
    assert got, f"no {level} line matching {pattern!r}:\n{report(r)}"


def assert_all_ok(r):
    bad = [f"{lv} {t}" for lv, t in r.lines if lv != "ok"]
    assert bad == [] and r.returncode == 0, \
        f"got {bad}, want only ok lines and exit 0:\n{report(r)}"


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "relay.secret"
    p.write_text(RELAY_PASSWORD + "\n")
    p.chmod(0o600)
    return p


@pytest.fixture
def setup(tmp_path, pki, certs, smarthosts, secret):
    """Factory: (overrides, sh=None, cert=None) -> (config path, env):
    a healthy PAM (pam_wrapper) setup with one smarthost (STARTTLS with
    a verified certificate, AUTH, XCLIENT) unless overridden."""
    (tmp_path / "pam").mkdir()
    pam = write_pam_files(tmp_path / "pam")
    made = []

    def make(overrides=None, sh=None, cert=None):
        if sh is None:
            sh = smarthosts(starttls="valid", xclient=True,
                            auth=(RELAY_USER, RELAY_PASSWORD))
        cp, kp = cert or certs("good", 365)
        conf = merge_config(base_config(pki, sh.port, free_port(),
                                        free_port()), {
            "server": {"hostname": HOSTNAME},
            "tls": {"cert": str(cp), "key": str(kp)},
            **relay_config(sh, tls="starttls", tls_verify=True,
                           ca_file=str(pki.ca_cert), auth_user=RELAY_USER,
                           auth_password_file=str(secret), xclient=True),
        })
        conf = merge_config(conf, overrides)
        path = tmp_path / f"preflight{len(made)}.conf"
        path.write_text(format_config(conf))
        made.append(path)
        backend = conf.get("auth", {}).get("backend", "pam")
        return path, pam.env() if backend == "pam" else {}
    return make


# --------------------------------------------------------------------------
# Healthy


def test_healthy_pam_setup_is_all_ok(setup):
    path, env = setup()
    r = run_preflight(path, env)
    assert_all_ok(r)
    assert_line(r, "ok", r"^certificate .*: loads, key .* matches")
    assert_line(r, "ok", r"chain complete up to the root .*preflight test CA")
    assert_line(r, "ok", r"valid until .* \(36[45] days left\)")
    assert_line(r, "ok", rf"covers \[server\] hostname {HOSTNAME}")
    assert_line(r, "ok", r"^smarthost 127\.0\.0\.1:\d+: connected, greeting,"
                r" EHLO, STARTTLS TLSv1\.[23] \(certificate verified\), "
                rf"AUTH as {RELAY_USER}, XCLIENT offered")
    assert_line(r, "ok", r"^pam service authrelay: its file exists")


def test_quits_and_never_sends_a_message(setup, smarthosts):
    sh = smarthosts(starttls="valid", xclient=True,
                    auth=(RELAY_USER, RELAY_PASSWORD))
    path, env = setup(sh=sh)
    r = run_preflight(path, env)
    assert r.returncode == 0, report(r)
    sh.wait_idle()
    verbs = [v for s in sh.sessions for v in s.verbs()]
    assert b"QUIT" in verbs and b"MAIL" not in verbs and \
        b"DATA" not in verbs, \
        f"got {verbs}, want a QUIT and no MAIL or DATA"


def test_no_listener_is_opened(setup):
    """The listen ports are taken: --check does not care (it binds
    nothing)."""
    import socket
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        path, env = setup({"server": {
            "listen": [f"127.0.0.1:{port} starttls"]}})
        assert_all_ok(run_preflight(path, env))
    finally:
        holder.close()


# --------------------------------------------------------------------------
# Certificates


CERT_FAULTS = {
    # name: (days left, names, chain, level, pattern, exit status)
    "expired": (-2, (HOSTNAME,), True, "FAIL", r": expired on ", 1),
    "soon": (10, (HOSTNAME,), True, "warn", r"\(10 days left\)", 0),
    "wrong-name": (365, ("other.example",), True, "FAIL",
                   rf"does not cover \[server\] hostname {HOSTNAME} "
                   r"\(it names other\.example\)", 1),
    "no-chain": (365, (HOSTNAME,), False, "FAIL",
                 r"chain does not verify: unable to get local issuer", 1),
}


@pytest.mark.parametrize("fault", sorted(CERT_FAULTS))
def test_certificate_fault(setup, certs, fault):
    days, names, chain, level, pattern, status = CERT_FAULTS[fault]
    path, env = setup(cert=certs(fault, days, names, chain))
    r = run_preflight(path, env)
    assert_line(r, level, r"^certificate .*" + pattern)
    assert r.returncode == status, report(r)


def test_key_that_does_not_match(setup, certs, pki):
    cp, _ = certs("mismatch", 365)
    path, env = setup(cert=(cp, pki.other_rsa_key))
    r = run_preflight(path, env)
    assert_line(r, "FAIL", r"key .* does not match certificate")
    assert r.returncode == 1, report(r)


# --------------------------------------------------------------------------
# Smarthosts


def test_smarthost_down(setup):
    port = free_port()
    path, env = setup(relay_config(f"127.0.0.1:{port}", tls="starttls"))
    r = run_preflight(path, env)
    assert_line(r, "FAIL", rf"^smarthost 127\.0\.0\.1:{port}: .*connect.*"
                r"Connection refused")
    assert r.returncode == 1, report(r)


@pytest.mark.parametrize("kind,pattern", [
    ("self-signed", r"certificate verification: self.signed certificate"),
    ("wrong-name", r"certificate verification: .*mismatch"),
])
def test_smarthost_certificate(setup, smarthosts, kind, pattern):
    sh = smarthosts(starttls=kind, auth=(RELAY_USER, RELAY_PASSWORD))
    path, env = setup(sh=sh)
    r = run_preflight(path, env)
    assert_line(r, "FAIL", rf"^smarthost {sh.address}: .*{pattern}")
    assert r.returncode == 1, report(r)
    sh.wait_idle()
    assert [a for s in sh.sessions for a in s.auth] == [], \
        "the credential went to an unverified smarthost"


def test_smarthost_refusing_auth(setup, smarthosts):
    sh = smarthosts(starttls="valid", auth=(RELAY_USER, "something else"))
    path, env = setup(sh=sh)
    r = run_preflight(path, env)
    assert_line(r, "FAIL", rf"^smarthost {sh.address}: .*our credential was "
                r"refused: 535")
    assert r.returncode == 1, report(r)


def test_xclient_not_offered_is_a_warning(setup, smarthosts):
    sh = smarthosts(starttls="valid", auth=(RELAY_USER, RELAY_PASSWORD))
    path, env = setup(sh=sh)
    r = run_preflight(path, env)
    assert_line(r, "warn", r"xclient = yes, but XCLIENT is not offered")
    assert r.returncode == 0, report(r)


def test_each_smarthost_is_checked(setup, smarthosts):
    good = smarthosts(starttls="valid", xclient=True,
                      auth=(RELAY_USER, RELAY_PASSWORD))
    port = free_port()
    path, env = setup(relay_config(good, f"127.0.0.1:{port}",
                                   tls="starttls"), sh=good)
    r = run_preflight(path, env)
    assert_line(r, "ok", rf"^smarthost {good.address}: connected")
    assert_line(r, "FAIL", rf"^smarthost 127\.0\.0\.1:{port}: ")
    assert r.returncode == 1, report(r)


# --------------------------------------------------------------------------
# PAM


def test_pam_missing_service_file(setup):
    """PAM then uses its "other" service: config_check.h's warning."""
    path, env = setup({"pam": {"service": "no-such-service"}})
    r = run_preflight(path, env)
    assert_line(r, "warn", r"^config .*no-such-service: no .*, so PAM uses "
                r".*other")
    assert not [t for lv, t in r.lines if t.startswith("pam service")], \
        report(r)


def test_pam_missing_group(setup):
    path, env = setup({"auth": {"require_group": "no-such-group-here"}})
    r = run_preflight(path, env)
    assert_line(r, "FAIL", r"^config .*no-such-group-here")
    assert r.returncode == 1, report(r)


def test_check_user_pam(setup):
    from conftest import USERS
    user, password = sorted(USERS.items())[0]
    path, env = setup()
    r = run_preflight(path, env, user=user, password=password,
                      sender=f"{user}@example.com")
    assert_line(r, "ok", rf"^user {user}: authenticated \(pam backend\), "
                rf"canonical name {user}")
    assert_line(r, "ok", rf"^user {user}: may send as {user}@example\.com")


# --------------------------------------------------------------------------
# The directory


def ldap_setup(setup, server, **kw):
    conf = ldap_config(server, require_group=[group_dn("senders")])
    conf["ldap"].update(kw.pop("ldap", {}))
    if "require_group" in kw:
        conf["auth"]["require_group"] = kw.pop("require_group")
    conf["policy"] = {"sender_check": "both"}
    return setup(conf)


def test_healthy_ldap_setup_is_all_ok(setup, ldap_server):
    path, env = ldap_setup(setup, ldap_server)
    r = run_preflight(path, env)
    assert_all_ok(r)
    assert_line(r, "ok", rf"^ldap {re.escape(ldap_server.uri)}: connected, "
                rf"service bind as {re.escape(SERVICE_DN)}")
    assert_line(r, "ok", r"^ldap \[ldap\] base dc=example,dc=com: exists")
    assert_line(r, "ok", r"^ldap \[auth\] require_group cn=senders,.*: "
                r"exists")


def test_ldaps_is_verified(setup, ldap_server, pki):
    path, env = ldap_setup(setup, ldap_server, ldap={
        "uri": ldap_server.ldaps_uri, "ca_file": str(pki.ca_cert)})
    r = run_preflight(path, env)
    assert_line(r, "ok", r"LDAPS \(certificate verified against the CA file "
                r"and the host name\)")
    assert r.returncode == 0, report(r)


def test_slapd_down(setup, slapd_factory):
    s = slapd_factory("down")
    uri = s.uri
    path, env = ldap_setup(setup, s)
    s.stop()
    r = run_preflight(path, env)
    assert_line(r, "FAIL", rf"^ldap {re.escape(uri)}: connect: ")
    assert_line(r, "FAIL", r"^ldap base and groups: not checked")
    assert r.returncode == 1, report(r)


def test_wrong_bind_secret(setup, ldap_server, tmp_path):
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    path, env = ldap_setup(setup, ldap_server,
                           ldap={"bind_password_file": str(wrong)})
    r = run_preflight(path, env)
    assert_line(r, "FAIL", rf"^ldap {re.escape(ldap_server.uri)}: bind as "
                rf"{re.escape(SERVICE_DN)}: Invalid credentials")
    assert r.returncode == 1, report(r)


def test_missing_group(setup, ldap_server):
    missing = group_dn("no-such-group")
    path, env = ldap_setup(setup, ldap_server,
                           require_group=[group_dn("senders"), missing])
    r = run_preflight(path, env)
    assert_line(r, "FAIL", rf"^ldap \[auth\] require_group "
                rf"{re.escape(missing)}: no such group")
    assert_line(r, "ok", r"^ldap \[auth\] require_group cn=senders,")
    assert r.returncode == 1, report(r)


CHECK_USER = {
    # name: (user, password, --from, level, pattern)
    "right-password": ("alice", None, None, "ok",
                       r"^user alice: authenticated \(ldap backend\), "
                       r"canonical name alice"),
    "wrong-password": ("alice", "wrong", None, "FAIL",
                       r"^user alice: refused: 535 5\.7\.8 "
                       r"\(Invalid credentials\)"),
    "outside-group": ("bob", None, None, "FAIL",
                      r"^user bob: refused: 535 5\.7\.8 "
                      r"\(not in a required group\)"),
    "own-address": ("alice", None, "a.lice@example.org", "ok",
                    r"^user alice: may send as a\.lice@example\.org"),
    "foreign-address": ("alice", None, "bob@example.com", "FAIL",
                        r"^user alice: may not send as bob@example\.com: "
                        r"not one of the user's addresses"),
}


@pytest.mark.parametrize("case", sorted(CHECK_USER))
def test_check_user(setup, ldap_server, case):
    user, password, sender, level, pattern = CHECK_USER[case]
    if password is None:
        password = LDAP_USERS[user]["password"]
    path, env = ldap_setup(setup, ldap_server)
    r = run_preflight(path, env, user=user, password=password,
                      sender=sender)
    assert_line(r, level, pattern)
    assert r.returncode == (1 if level == "FAIL" else 0), report(r)
    if case == "right-password":
        assert_line(r, "ok", r"^user alice: member of a required group")
        assert_line(r, "ok", r"^user alice: sender addresses .*: "
                    r"alice@example\.com, a\.lice@example\.org")
    assert LDAP_USERS[user]["password"] not in r.stdout + r.stderr


def test_password_never_on_the_command_line():
    require_daemon()
    r = subprocess.run([str(AUTHRELAY_BIN), "--check-user", "alice"],
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "--check" in r.stderr, r.stderr
