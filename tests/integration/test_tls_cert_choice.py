"""With an RSA and an ECDSA certificate configured ([tls] cert/key twice),
each client gets the cheapest certificate it can verify: ECDSA P-256
(a signature costs a fraction of an RSA-2048 one) whenever its TLS 1.3
signature algorithms or TLS 1.2 cipher suites allow it, RSA otherwise."""

import shutil
import subprocess

import pytest

from harness import SMTPRaw

SIGALGS = {
    # what a TLS 1.3 client offers -> the certificate it must get
    "ecdsa-and-rsa": ("ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256", "ec"),
    "rsa-first": ("rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256", "ec"),
    "rsa-only": ("rsa_pss_rsae_sha256:rsa_pkcs1_sha256", "rsa"),
    "ecdsa-only": ("ecdsa_secp256r1_sha256", "ec"),
}


def test_default_tls13_client_gets_ecdsa(authrelay, pki):
    d = authrelay()
    with SMTPRaw(d.tls_port, tls_context=pki.client_context()) as c:
        assert c.sock.version() == "TLSv1.3"
        got = c.sock.getpeercert(binary_form=True)
        assert got == pki.der("ec"), "got the RSA certificate, want ECDSA"


@pytest.mark.parametrize("offer", sorted(SIGALGS))
def test_tls13_signature_algorithms_choose(authrelay, pki, offer, tmp_path):
    openssl = shutil.which("openssl")
    assert openssl, "openssl(1) is needed"
    sigalgs, want = SIGALGS[offer]
    d = authrelay()
    out = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{d.tls_port}",
         "-tls1_3", "-sigalgs", sigalgs, "-showcerts", "-brief"],
        input=b"QUIT\r\n", capture_output=True, timeout=20)
    text = (out.stdout + out.stderr).decode("utf-8", "replace")
    kind = "ec" if "Signature type: ECDSA" in text else \
        "rsa" if "Signature type: RSA" in text else None
    assert kind == want, f"got {kind} ({text[-400:]!r}), want {want}"
