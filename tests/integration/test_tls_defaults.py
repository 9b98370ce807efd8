"""The TLS defaults, seen by real TLS clients on both listeners: TLS 1.2
only with forward-secret AEAD suites (ECDHE with AES-GCM or
ChaCha20-Poly1305, the Mozilla "intermediate" profile), TLS 1.3 as OpenSSL
has it; RSA key exchange and CBC suites are refused; [tls] ciphers still
overrides; testssl.sh finds nothing vulnerable on either listener."""

import json
import re
import subprocess

import pytest

from harness import require

LISTENERS = ["starttls", "tls"]


def s_client(d, listener, *args, timeout=30):
    """openssl s_client against one listener -> (handshake ok, protocol,
    cipher, output)."""
    openssl = require("openssl")
    port = d.starttls_port if listener == "starttls" else d.tls_port
    cmd = [openssl, "s_client", "-connect", f"127.0.0.1:{port}",
           "-servername", "relay.test.example", "-brief", *args]
    if listener == "starttls":
        cmd += ["-starttls", "smtp"]
    r = subprocess.run(cmd, input="QUIT\r\n", capture_output=True,
                       text=True, timeout=timeout)
    out = r.stdout + r.stderr
    proto = re.search(r"^Protocol version: (\S+)", out, re.M)
    cipher = re.search(r"^Ciphersuite: (\S+)", out, re.M)
    ok = proto is not None and cipher is not None
    return (ok, proto.group(1) if proto else None,
            cipher.group(1) if cipher else None, out)


# case -> (s_client args, want handshake, want protocol, want cipher)
CLIENTS = {
    "tls1.2-rsa-kx-cbc": (["-tls1_2", "-cipher", "AES128-SHA"], False,
                          None, None),
    "tls1.2-rsa-kx-gcm": (["-tls1_2", "-cipher", "AES256-GCM-SHA384"], False,
                          None, None),
    "tls1.2-ecdhe-cbc": (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"],
                         False, None, None),
    "tls1.2-ecdhe-cbc-sha256": (["-tls1_2", "-cipher",
                                 "ECDHE-ECDSA-AES128-SHA256"], False, None,
                                None),
    "tls1.2-ecdhe-rsa-gcm": (["-tls1_2", "-cipher",
                              "ECDHE-RSA-AES128-GCM-SHA256"], True,
                             "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
    "tls1.2-ecdhe-ecdsa-gcm": (["-tls1_2", "-cipher",
                                "ECDHE-ECDSA-AES256-GCM-SHA384"], True,
                               "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    "tls1.2-ecdhe-chacha20": (["-tls1_2", "-cipher",
                               "ECDHE-RSA-CHACHA20-POLY1305"], True,
                              "TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305"),
    "tls1.3": (["-tls1_3"], True, "TLSv1.3", None),
    "tls1.1": (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], False, None,
               None),
}


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("case", list(CLIENTS))
def test_default_ciphers(authrelay, listener, case):
    args, want_ok, want_proto, want_cipher = CLIENTS[case]
    d = authrelay()
    ok, proto, cipher, out = s_client(d, listener, *args)
    assert ok == want_ok, \
        f"handshake: got {ok} ({proto} {cipher}), want {want_ok}:\n{out}"
    if want_proto:
        assert proto == want_proto, f"protocol: got {proto}, want " \
            f"{want_proto}"
    if want_cipher:
        assert cipher == want_cipher, f"cipher: got {cipher}, want " \
            f"{want_cipher}"


def test_server_picks_its_preferred_cipher(authrelay):
    """The client lists CHACHA20 first; the server's order (AES-GCM with
    ECDSA first) wins."""
    d = authrelay()
    ok, _, cipher, out = s_client(
        d, "tls", "-tls1_2", "-cipher",
        "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256")
    assert ok, out
    assert cipher == "ECDHE-ECDSA-AES128-GCM-SHA256", \
        f"cipher: got {cipher}, want the server's first choice"


def test_ciphers_key_overrides_the_default(authrelay):
    d = authrelay(config={"tls": {"ciphers": "AES128-SHA"}})
    ok, proto, cipher, out = s_client(d, "tls", "-tls1_2", "-cipher",
                                      "AES128-SHA")
    assert ok and cipher == "AES128-SHA", \
        f"with ciphers = AES128-SHA: got {ok} {proto} {cipher}:\n{out}"


def flagged(items):
    """testssl.sh's flat JSON: the findings it calls "VULNERABLE" or
    "potentially VULNERABLE", or rates MEDIUM or worse."""
    bad = []
    for item in items:
        text = str(item.get("finding", ""))
        vulnerable = ("VULNERABLE" in text.upper() and
                      "NOT VULNERABLE" not in text.upper())
        if vulnerable or item.get("severity") in ("MEDIUM", "HIGH",
                                                  "CRITICAL"):
            bad.append(f"{item.get('id')}: {text} "
                       f"({item.get('severity')})")
    return bad


@pytest.mark.parametrize("listener", LISTENERS)
def test_testssl_finds_nothing_vulnerable(authrelay, tmp_path, listener):
    testssl = require("testssl", "testssl (Debian package testssl.sh)")
    d = authrelay()
    port = d.starttls_port if listener == "starttls" else d.tls_port
    out = tmp_path / f"testssl-{listener}.json"
    # --vulnerable and the cipher categories; --fast uses openssl alone
    # and bounds the run.
    cmd = [testssl, "--quiet", "--color", "0", "--warnings", "off",
           "--fast", "--sneaky", "--connect-timeout", "5",
           "--openssl-timeout", "5", "--jsonfile", str(out),
           "--vulnerable", "--std", "--fs", "--protocols"]
    if listener == "starttls":
        cmd += ["--starttls", "smtp"]
    cmd.append(f"127.0.0.1:{port}")
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=400)
    assert out.exists() and out.stat().st_size > 0, \
        f"testssl.sh wrote no JSON (exit {r.returncode}):\n" \
        f"{r.stdout[-3000:]}\n{r.stderr[-2000:]}"
    items = json.loads(out.read_text())
    ids = {i.get("id") for i in items}
    # testssl.sh 3.0 (Debian 12) calls forward secrecy PFS.
    for want in ("LUCKY13", "BEAST", "SWEET32", "ROBOT", "PFS",
                 "cipherlist_AVERAGE"):
        assert want in ids, f"testssl.sh did not report {want}: " \
            f"{sorted(ids)}"
    by_id = {i.get("id"): i.get("finding") for i in items}
    for cat in ("cipherlist_AVERAGE", "cipherlist_LOW", "cipherlist_3DES_IDEA",
                "TLS1", "TLS1_1"):
        assert by_id.get(cat) == "not offered", \
            f"{cat}: got {by_id.get(cat)!r}, want 'not offered'"
    bad = flagged(items)
    assert not bad, "testssl.sh flags:\n" + "\n".join(bad)
    errors = [f"{i.get('id')}: {i.get('finding')}" for i in items
              if i.get("id") == "scanProblem"]
    assert not errors, "testssl.sh could not scan:\n" + "\n".join(errors)
