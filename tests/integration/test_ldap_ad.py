"""Active Directory's bind errors: invalidCredentials (49) with a sub-code in
the diagnostic message ("... AcceptSecurityContext error, data 533, ...").
The worker logs what the code means and says it in its REASON; the client
gets the one 535 whatever the code. No AD here: a minimal LDAP server
(FakeAD) answers binds the way AD does, and root DSE reads with success."""

import socket
import threading

import pytest

from harness import check
from slapd import AUTH_PERMFAIL, ldap_config, ldap_worker  # noqa: F401

AD_DN = "CN=%u,CN=Users,DC=corp,DC=example"
AD_MESSAGE = ("80090308: LdapErr: DSID-0C09044E, comment: "
              "AcceptSecurityContext error, data {code}, v4563")

CODES = {
    "52e": "invalid credentials",
    "525": "user not found",
    "530": "not permitted to log on at this time",
    "531": "not permitted to log on at this workstation",
    "532": "password expired",
    "533": "account disabled",
    "701": "account expired",
    "773": "user must reset password",
    "775": "account locked out",
}


# -- a few BER helpers (RFC 4511 §5.1, definite lengths) -------------------

def ber_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, value):
    return bytes([tag]) + ber_len(len(value)) + value


def ber_int(n):
    return tlv(0x02, n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big"))


def ldap_result(app_tag, msgid, code, message=""):
    """An LDAPResult-shaped response: resultCode, matchedDN,
    diagnosticMessage."""
    op = tlv(app_tag, tlv(0x0a, bytes([code])) + tlv(0x04, b"") +
             tlv(0x04, message.encode()))
    return tlv(0x30, ber_int(msgid) + op)


def read_message(sock):
    """One LDAPMessage: (messageID, protocolOp tag, protocolOp body)."""
    def read(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def length():
        first = read(1)[0]
        if first < 0x80:
            return first
        return int.from_bytes(read(first & 0x7f), "big")

    if read(1)[0] != 0x30:
        raise ValueError("not an LDAPMessage")
    body = read(length())
    pos = 0
    assert body[pos] == 0x02
    n = body[pos + 1]
    msgid = int.from_bytes(body[pos + 2:pos + 2 + n], "big")
    pos += 2 + n
    return msgid, body[pos], body[pos:]


class FakeAD:
    """Answers every bind with invalidCredentials and AD's message for
    self.code (None: success), every search with an empty success."""

    def __init__(self):
        self.code = "533"
        self.binds = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def uri(self):
        return f"ldap://127.0.0.1:{self.port}"

    def serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.handle, args=(conn,),
                             daemon=True).start()

    def handle(self, conn):
        conn.settimeout(30)
        try:
            while True:
                msgid, tag, op = read_message(conn)
                if tag == 0x60:                 # BindRequest
                    self.binds.append(op)
                    if self.code is None:
                        conn.sendall(ldap_result(0x61, msgid, 0))
                    else:
                        conn.sendall(ldap_result(
                            0x61, msgid, 49,
                            AD_MESSAGE.format(code=self.code)))
                elif tag == 0x63:               # SearchRequest
                    conn.sendall(ldap_result(0x65, msgid, 0))
                elif tag == 0x42:               # UnbindRequest
                    break
                else:
                    break
        except (EOFError, OSError, ValueError):
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def fake_ad():
    ad = FakeAD()
    yield ad
    ad.stop()


def ad_config(ad, **ldap):
    class Server:       # what ldap_config needs of a server
        uri = ad.uri
        secret_file = "/dev/null"
    conf = ldap_config(Server, user_dn_template=AD_DN,
                       address_attributes="mail", **ldap)
    del conf["ldap"]["bind_dn"]
    del conf["ldap"]["bind_password_file"]
    return conf


@pytest.mark.parametrize("code", list(CODES))
def test_sub_code_is_the_reason(ldap_worker, fake_ad, code):
    fake_ad.code = code
    w = ldap_worker(ad_config(fake_ad))
    rep = w.auth("jdoe", "Some-Passw0rd")
    assert rep["result"] == AUTH_PERMFAIL, rep
    assert rep["reason"] == f"{CODES[code]} (AD data {code})", rep
    assert f"bind refused: {CODES[code]} (AD data {code})" in w.log()


def test_unknown_sub_code_is_still_535(ldap_worker, fake_ad):
    fake_ad.code = "999"
    w = ldap_worker(ad_config(fake_ad))
    rep = w.auth("jdoe", "Some-Passw0rd")
    assert (rep["result"], rep["reason"]) == \
        (AUTH_PERMFAIL, "Invalid credentials"), rep


def test_client_gets_the_one_535(authrelay, fake_ad):
    """Disabled, locked out, expired, wrong password: the same reply,
    octet for octet; the reason is in the log only."""
    d = authrelay(config=ad_config(fake_ad), pam="system")
    replies = {}
    for code in ("52e", "533", "775", "532"):
        fake_ad.code = code
        with d.session() as c:
            r = c.auth_plain("jdoe", "Some-Passw0rd")
        check(r, 535, "5.7.8", code)
        replies[code] = r.raw
    assert len(set(replies.values())) == 1, replies
    log = d.log()
    for code in ("533", "775", "532"):
        assert f"(AD data {code})" in log, f"AD data {code} not logged"
        assert f"(AD data {code})" not in replies[code].decode()
