"""authrelay --autoconfig DIR --domain DOMAIN: mail client configuration
files from the config's hostname and listeners. The XML files parse and
carry the host, 465 with implicit TLS (SSL) and 587 with STARTTLS, and
the login format; the Apple profile is a property list with the keys of
Apple's com.apple.mail.managed payload; the whole output from a test
config equals the golden files in golden/autoconfig/ (DIR as @DIR@)."""

import plistlib
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import AUTHRELAY_BIN, base_env, require_daemon

GOLDEN = Path(__file__).parent / "golden" / "autoconfig"
FILES = ("mail/config-v1.1.xml", "autodiscover/autodiscover.xml",
         "apple/example.com.mobileconfig", "nginx.conf", "apache.conf")
OL = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/" \
     "responseschema/2006a}"
LISTEN = ["127.0.0.1:587 starttls", "127.0.0.1:465 tls"]


def generate(config_for_check, tmp_path, listen=LISTEN, auth=None,
             ldap=None, args=("--imap", "imap.example.com")):
    conf = {"server": {"hostname": "mail.example.com", "listen": listen}}
    if auth:
        conf["auth"] = auth
    if ldap:
        conf["ldap"] = ldap
    path, _ = config_for_check(conf)
    out = tmp_path / "www"
    require_daemon()
    r = subprocess.run([str(AUTHRELAY_BIN), "-c", str(path), "--autoconfig",
                        str(out), "--domain", "example.com", *args],
                       capture_output=True, text=True, timeout=30,
                       env=base_env({}), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"exit {r.returncode}:\n{r.stderr}"
    return out, r


def test_golden(config_for_check, tmp_path):
    out, r = generate(config_for_check, tmp_path)
    for name in FILES:
        got = (out / name).read_text().replace(str(out), "@DIR@")
        want = (GOLDEN / (name.replace("/", "_") + ".ref")).read_text()
        assert got == want, f"{name}: got\n{got}\nwant\n{want}"
    assert sorted(r.stdout.split()) == sorted(str(out / n) for n in FILES)


def servers(root):
    return [(s.get("type"), s.findtext("hostname"), s.findtext("port"),
             s.findtext("socketType"), s.findtext("username"),
             s.findtext("authentication"))
            for s in root.iter() if s.tag.endswith("Server")]


def test_thunderbird(config_for_check, tmp_path):
    out, _ = generate(config_for_check, tmp_path)
    root = ET.parse(out / "mail/config-v1.1.xml").getroot()
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    prov = root.find("emailProvider")
    assert prov.get("id") == "example.com"
    assert prov.findtext("domain") == "example.com"
    got = servers(prov)
    want = [("imap", "imap.example.com", "993", "SSL", "%EMAILLOCALPART%",
             "password-cleartext"),
            ("smtp", "mail.example.com", "465", "SSL", "%EMAILLOCALPART%",
             "password-cleartext"),
            ("smtp", "mail.example.com", "587", "STARTTLS",
             "%EMAILLOCALPART%", "password-cleartext")]
    assert got == want, f"got {got}, want {want}"


def test_outlook(config_for_check, tmp_path):
    out, _ = generate(config_for_check, tmp_path)
    root = ET.parse(out / "autodiscover/autodiscover.xml").getroot()
    assert root.tag == "{http://schemas.microsoft.com/exchange/" \
                       "autodiscover/responseschema/2006}Autodiscover"
    acct = root.find(f"{OL}Response/{OL}Account")
    assert acct.findtext(f"{OL}AccountType") == "email"
    assert acct.findtext(f"{OL}Action") == "settings"
    got = [(p.findtext(f"{OL}Type"), p.findtext(f"{OL}Server"),
            p.findtext(f"{OL}Port"), p.findtext(f"{OL}Encryption"),
            p.findtext(f"{OL}AuthRequired"))
           for p in acct.findall(f"{OL}Protocol")]
    want = [("IMAP", "imap.example.com", "993", "SSL", "on"),
            ("SMTP", "mail.example.com", "465", "SSL", "on")]
    assert got == want, f"got {got}, want {want}"


def test_apple_profile(config_for_check, tmp_path):
    out, _ = generate(config_for_check, tmp_path)
    with open(out / "apple/example.com.mobileconfig", "rb") as f:
        prof = plistlib.load(f)
    assert prof["PayloadType"] == "Configuration"
    assert prof["PayloadVersion"] == 1
    for key in ("PayloadIdentifier", "PayloadUUID", "PayloadDisplayName"):
        assert isinstance(prof[key], str) and prof[key], key
    (mail,) = prof["PayloadContent"]
    want = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "EmailAccountType": "EmailTypeIMAP",
        "IncomingMailServerHostName": "imap.example.com",
        "IncomingMailServerPortNumber": 993,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": "mail.example.com",
        "OutgoingMailServerPortNumber": 465,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
    }
    got = {k: mail.get(k) for k in want}
    assert got == want, f"got {got}, want {want}"
    assert mail["PayloadUUID"] != prof["PayloadUUID"]
    # Name-based UUIDs: generating again gives the same profile.
    (tmp_path / "again").mkdir()
    again, _ = generate(config_for_check, tmp_path / "again")
    assert (again / "apple/example.com.mobileconfig").read_bytes() == \
        (out / "apple/example.com.mobileconfig").read_bytes()


def test_starttls_only_and_no_incoming_server(config_for_check, tmp_path):
    out, r = generate(config_for_check, tmp_path,
                      listen=["127.0.0.1:587 starttls"], args=())
    got = servers(ET.parse(out / "mail/config-v1.1.xml").getroot())
    assert [(s[0], s[2], s[3]) for s in got] == [("smtp", "587", "STARTTLS")]
    assert not (out / "apple").exists()
    assert "needs the incoming server" in r.stderr


@pytest.mark.parametrize("user_filter,want", [
    ("(&(objectClass=inetOrgPerson)(mail=%u))", "%EMAILADDRESS%"),
    ("(&(objectClass=inetOrgPerson)(uid=%u))", "%EMAILLOCALPART%"),
])
def test_login_format_follows_the_ldap_login_attribute(
        config_for_check, tmp_path, user_filter, want):
    out, _ = generate(config_for_check, tmp_path, auth={"backend": "ldap"},
                      ldap={"uri": "ldap://127.0.0.1", "base": "dc=x",
                            "user_filter": user_filter}, args=())
    got = {s[4] for s in servers(ET.parse(
        out / "mail/config-v1.1.xml").getroot())}
    assert got == {want}, f"got {got}, want {want}"


@pytest.mark.parametrize("args", [
    ("--domain", "exa mple.com"),
    ("--domain", "example.com", "--imap", "imap.example.com:99999"),
    ("--domain", "<x>.com"),
])
def test_bad_arguments(config_for_check, tmp_path, args):
    path, _ = config_for_check({"server": {"hostname": "mail.example.com"}})
    require_daemon()
    r = subprocess.run([str(AUTHRELAY_BIN), "-c", str(path), "--autoconfig",
                        str(tmp_path / "www"), *args], capture_output=True,
                       text=True, timeout=30, env=base_env({}))
    assert r.returncode == 1 and not (tmp_path / "www").exists(), r.stderr
