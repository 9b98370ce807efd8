"""A local OAuth2 token endpoint for the OAuth2 relay tests.

TokenEndpoint is a threaded HTTPS server on 127.0.0.1 (certificate from
the suite's test CA) that answers POSTs to its token path like Microsoft
Entra ID and Google do:

  client_credentials (RFC 6749 §4.4) with client_id + client_secret, or
      with a client assertion (RFC 7523 §2.2): an RS256 JWT verified
      against the client's registered certificate, with x5t#S256 naming
      that certificate, aud = the token URL, iss = sub = client id, a
      jti and a short life;
  jwt_bearer (RFC 7523 §2.1) for a service account: an RS256 JWT
      verified against the account's public key, iss = its client_email,
      aud = the token URL, scope https://mail.google.com/ and sub = a
      mailbox allowed to be delegated.

Each token it issues is remembered with its user (the sub of a
jwt_bearer grant; None for an application token) and expiry, so a
scripted smarthost can accept exactly the tokens it issued
(check_token). Faults are switchable while it runs:

  fault = None | "invalid_client" | "consent" | "server_error"
  expires_in = seconds in the next answers (a short one for refresh tests)
  slow = seconds to wait before answering
  down() / up(): stop listening (connection refused) and listen again

Counts: requests (every POST), grants (successful ones, by kind), and
the form of every request (tests check what was sent, never print it).
Only Debian-packaged modules: python3-jwt, python3-cryptography.
"""

import base64
import hashlib
import json
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness import free_port

TOKEN_PATH = "/tenant.example/oauth2/v2.0/token"
GOOGLE_SCOPE = "https://mail.google.com/"
MS_SCOPE = "https://outlook.office365.com/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):     # quiet
        pass

    def _answer(self, status, obj):
        body = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        ep = self.server.endpoint
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 1 << 20)).decode("utf-8",
                                                           "replace")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
        with ep.lock:
            ep.requests += 1
            ep.forms.append(form)
            slow, fault = ep.slow, ep.fault
        if slow:
            time.sleep(slow)
        if self.path != TOKEN_PATH:
            self._answer(404, {"error": "not_found"})
            return
        if fault == "server_error":
            self._answer(503, {"error": "temporarily_unavailable"})
            return
        if fault == "invalid_client":
            self._answer(401, {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client "
                                     "secret provided."})
            return
        if fault == "consent":
            self._answer(400, {
                "error": "invalid_grant",
                "error_description": "AADSTS65001: The user or "
                                     "administrator has not consented."})
            return
        status, obj = ep.grant(form)
        self._answer(status, obj)


class TokenEndpoint:
    __test__ = False

    def __init__(self, pki):
        self.pki = pki
        self.port = free_port()
        self.clients = {}           # client_id -> secret
        self.client_certs = {}      # client_id -> x509.Certificate
        self.service_accounts = {}  # client_email -> public key
        self.delegated = set()      # mailboxes a service account may be
        self.fault = None
        self.expires_in = 3600
        self.slow = 0
        self.requests = 0
        self.forms = []
        self.grants = []            # (kind, client or account, user)
        self.issued = {}            # token -> (user, expiry (monotonic))
        self.seen_jti = set()
        self.lock = threading.Lock()
        self._server = None
        self._thread = None

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}{TOKEN_PATH}"

    # -- life ------------------------------------------------------------

    def up(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.pki.rsa_cert), str(self.pki.rsa_key))
        srv = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler,
                                  bind_and_activate=False)
        srv.allow_reuse_address = True
        srv.daemon_threads = True
        srv.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.server_bind()
        srv.server_activate()
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        srv.endpoint = self
        srv.timeout = 10
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        return self

    start = up

    def down(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    stop = down

    # -- registrations ---------------------------------------------------

    def add_client_secret(self, client_id, secret):
        self.clients[client_id] = secret

    def add_client_certificate(self, client_id, cert_pem):
        self.client_certs[client_id] = x509.load_pem_x509_certificate(
            cert_pem)

    def add_service_account(self, email, public_key_pem, mailboxes):
        self.service_accounts[email] = serialization.load_pem_public_key(
            public_key_pem)
        self.delegated.update(m.lower() for m in mailboxes)

    # -- tokens ----------------------------------------------------------

    def _issue(self, kind, who, user):
        token = "at." + secrets.token_urlsafe(48)
        with self.lock:
            self.issued[token] = (user, time.monotonic() + self.expires_in)
            self.grants.append((kind, who, user))
            expires = self.expires_in
        return 200, {"token_type": "Bearer", "expires_in": expires,
                     "access_token": token}

    def check_token(self, mailbox, token):
        """True if token was issued here, is unexpired and not revoked,
        and is for mailbox (a jwt_bearer token) or an application token
        (client_credentials, which may send as any mailbox)."""
        with self.lock:
            entry = self.issued.get(token)
        if entry is None:
            return False
        user, expiry = entry
        if time.monotonic() >= expiry:
            return False
        return user is None or user == mailbox.lower()

    def revoke_all(self):
        with self.lock:
            self.issued.clear()

    def tokens_issued(self):
        with self.lock:
            return list(self.issued)

    # -- grants ----------------------------------------------------------

    def grant(self, form):
        grant_type = form.get("grant_type")
        if grant_type == "client_credentials":
            return self._client_credentials(form)
        if grant_type == JWT_BEARER:
            return self._jwt_bearer(form)
        return 400, {"error": "unsupported_grant_type"}

    def _client_credentials(self, form):
        cid = form.get("client_id", "")
        if form.get("scope") != MS_SCOPE:
            return 400, {"error": "invalid_scope"}
        if "client_secret" in form:
            if self.clients.get(cid) != form["client_secret"]:
                return 401, {"error": "invalid_client",
                             "error_description": "AADSTS7000215: "
                             "Invalid client secret provided."}
            return self._issue("client_secret", cid, None)
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return 401, {"error": "invalid_client"}
        cert = self.client_certs.get(cid)
        if cert is None:
            return 401, {"error": "invalid_client",
                         "error_description": "AADSTS700016: unknown "
                         "application"}
        assertion = form.get("client_assertion", "")
        try:
            header = pyjwt.get_unverified_header(assertion)
            der = cert.public_bytes(serialization.Encoding.DER)
            if header.get("alg") != "RS256" or \
                    header.get("x5t#S256") != b64url(
                        hashlib.sha256(der).digest()) or \
                    header.get("x5t") != b64url(hashlib.sha1(der).digest()):
                raise pyjwt.InvalidTokenError("thumbprint")
            claims = pyjwt.decode(
                assertion, cert.public_key(), algorithms=["RS256"],
                audience=self.url,
                options={"require": ["exp", "iat", "aud", "iss", "sub",
                                     "jti"]})
            if claims["iss"] != cid or claims["sub"] != cid or \
                    claims["exp"] - claims["iat"] > 600:
                raise pyjwt.InvalidTokenError("claims")
            with self.lock:
                if claims["jti"] in self.seen_jti:
                    raise pyjwt.InvalidTokenError("replayed jti")
                self.seen_jti.add(claims["jti"])
        except (pyjwt.InvalidTokenError, ValueError) as e:
            return 401, {"error": "invalid_client",
                         "error_description": f"AADSTS700027: assertion "
                         f"refused ({type(e).__name__})"}
        return self._issue("client_assertion", cid, None)

    def _jwt_bearer(self, form):
        assertion = form.get("assertion", "")
        try:
            unverified = pyjwt.decode(assertion,
                                      options={"verify_signature": False})
            key = self.service_accounts.get(unverified.get("iss"))
            if key is None:
                return 401, {"error": "invalid_client"}
            claims = pyjwt.decode(
                assertion, key, algorithms=["RS256"], audience=self.url,
                options={"require": ["exp", "iat", "aud", "iss", "sub",
                                     "scope"]})
        except (pyjwt.InvalidTokenError, ValueError):
            return 400, {"error": "invalid_grant",
                         "error_description": "Invalid JWT Signature."}
        if claims["scope"] != GOOGLE_SCOPE:
            return 400, {"error": "invalid_scope"}
        sub = claims["sub"].lower()
        if sub not in self.delegated:
            return 401, {"error": "unauthorized_client",
                         "error_description": "Client is unauthorized to "
                         "retrieve access tokens using this method."}
        return self._issue("jwt_bearer", claims["iss"], sub)


def make_client_certificate(d):
    """A self-signed RSA certificate and key, as uploaded to an Entra ID
    app registration: (cert path, key path, cert PEM)."""
    import subprocess
    from pathlib import Path
    d = Path(d)
    cert, key = d / "client.crt", d / "client.key"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "2", "-subj", "/CN=authrelay test app"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    key.chmod(0o600)
    return cert, key, cert.read_bytes()


def make_service_account(d, email="relay@project.iam.gserviceaccount.com",
                         token_uri=None):
    """A Google service account JSON key: (path, public key PEM, the
    private key PEM as text, for the no-secret-in-output checks)."""
    from pathlib import Path
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    path = Path(d) / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "project",
        "private_key_id": secrets.token_hex(20), "private_key": pem,
        "client_email": email, "client_id": "1234567890",
        "token_uri": token_uri or "https://oauth2.googleapis.com/token",
    }))
    path.chmod(0o600)
    return path, pub, pem


@pytest.fixture
def endpoint(pki):
    """A started TokenEndpoint for one test (import it into a test module
    to use it)."""
    ep = TokenEndpoint(pki).start()
    yield ep
    ep.stop()
