"""The complete audit trail (issue 10): every reply of class 4 or 5 a
session sends, ours or the smarthost's, is a "reply" record

    reply session=N client=IP user=NAME command="RCPT TO:<...>"
          reply="550 5.1.1" reply_text="..." [smarthost=HOST:PORT]

(user once authenticated; command without AUTH data: "AUTH PLAIN", never
its response; smarthost= when the reply is the smarthost's). A message
record lists every recipient with the answer it got, to=ADDRESS,CODE,
ENHANCED, one to= each. A failed TLS handshake, with the client or with
the smarthost, is a "tls-failure" record with session and client. An
IPv4 client on a dual-stack socket is its IPv4 address everywhere.
"""

import socket
import ssl

import pytest

from conftest import USERS
from harness import SMTPRaw, b64, check, plain_response
from policy_helpers import (audit_records, connect_from, field_values,
                            message, session_from, start_in_journal,
                            tcp_from, transact, wait_record)
from policy_helpers import journal  # noqa: F401 (fixture)
from smarthost import only_message, relay_config, split_tagged

pytest_plugins = ["smarthost"]

SENDER = "alice@example.com"


def authed(d, ip, user="alice"):
    c = session_from(d, ip)
    check(c.auth_plain(user, USERS[user]), 235, "2.7.0",
          what=f"AUTH as {user} from {ip}")
    return c


def the_record(d, event, **match):
    """The one record of event with those fields (waited for), and no
    second one."""
    rec = wait_record(d, event, **match)
    same = [r for r in audit_records(d.log(), event)
            if all(r.get(k) == v for k, v in match.items())]
    assert len(same) == 1, f"got {len(same)} {event} records with " \
        f"{match}, want 1:\n" + "\n".join(r.line for r in same)
    return rec


def assert_fields(rec, want, what):
    problems = [f"{k}: got {rec.get(k)!r}, want {v!r}"
                for k, v in want.items() if rec.get(k) != v]
    assert not problems, f"{what}:\n" + "\n".join(problems) + \
        f"\nrecord: {rec.line}"


def session_of(d, ip):
    """The session id of the (only) connection from ip."""
    recs = audit_records(d.log(), "connect")
    ids = [r["session"] for r in recs if r.get("client") == ip]
    assert len(ids) == 1, f"got sessions {ids} from {ip}, want one"
    return ids[0]


# --------------------------------------------------------------------------
# Our own refusals: each a reply record with who, what and the code

def refuse_sender(c):
    return c.cmd("MAIL FROM:<mallory@example.com>")


def refuse_rate(c):
    # bob's first message takes the one user_rate allows
    assert transact(c, "bob@example.com").code == 250
    return c.cmd("MAIL FROM:<bob@example.com>")


def refuse_sequence(c):
    return c.cmd("RCPT TO:<bob@example.net>")


def refuse_unknown(c):
    return c.cmd("FROB bob@example.net")


def refuse_size_mail(c):
    return c.cmd(f"MAIL FROM:<{SENDER}> SIZE=999999")


def refuse_size_data(c):
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    c.expect("RCPT TO:<bob@example.net>", 250)
    c.expect("DATA", 354)
    c.send(message(body=b"x" * 998 + b"\r\n") * 10 + b".\r\n")
    return c.read_reply()


# (name, source address, user, what the client does, want command,
#  code, enhanced)
OURS = [
    ("sender-check", "127.0.0.2", "alice", refuse_sender,
     "MAIL FROM:<mallory@example.com>", 553, "5.7.1"),
    ("rate", "127.0.0.3", "bob", refuse_rate,
     "MAIL FROM:<bob@example.com>", 450, "4.7.1"),
    ("bad-sequence", "127.0.0.4", "alice", refuse_sequence,
     "RCPT TO:<bob@example.net>", 503, "5.5.1"),
    # Nothing of an unknown line: it may be a base64 AUTH answer.
    ("unknown-command", "127.0.0.5", "alice", refuse_unknown,
     "(unrecognized)", 500, "5.5.1"),
    ("size-at-mail", "127.0.0.6", "alice", refuse_size_mail,
     f"MAIL FROM:<{SENDER}> SIZE=999999", 552, "5.3.4"),
    ("size-at-end-of-data", "127.0.0.7", "alice", refuse_size_data,
     "END-OF-MESSAGE", 552, "5.3.4"),
]


def test_our_refusals_are_reply_records(authrelay, smarthosts):
    sh = smarthosts()
    conf = relay_config(sh, policy={"sender_check": "envelope",
                                    "user_rate": "1/60s"},
                        server={"max_message_size": 4096})
    d = authrelay(config=conf)
    for name, ip, user, act, command, code, enh in OURS:
        c = authed(d, ip, user)
        r = act(c)
        check(r, code, enh, what=name)
        c.quit()
        rec = the_record(d, "reply", client=ip, reply=f"{code} {enh}")
        text = r.text.removeprefix(enh + " ")
        assert_fields(rec, {"session": session_of(d, ip), "user": user,
                            "command": command, "reply_text": text},
                      name)
        assert "smarthost" not in rec, f"{name}: ours, not the " \
            f"smarthost's: {rec.line}"
        assert rec.level == "notice", rec.line
    # Before AUTH: no user field; STARTTLS first (RFC 3207).
    c = connect_from(d, "127.0.0.8")
    c.ehlo()
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 530, "5.7.0")
    c.quit()
    rec = the_record(d, "reply", client="127.0.0.8")
    assert_fields(rec, {"command": f"MAIL FROM:<{SENDER}>",
                        "reply": "530 5.7.0"}, "before TLS")
    assert "user" not in rec, rec.line


# --------------------------------------------------------------------------
# The smarthost's refusals, passed on and logged as its

def test_smarthost_refusals_are_reply_records(authrelay, smarthosts):
    sh = smarthosts(reject_rcpt={"nobody@example.net":
                                 "550 5.1.1 No such user here"})
    d = authrelay(config=relay_config(sh))

    # RCPT: 550 for one recipient, the transaction goes on.
    c = authed(d, "127.0.0.2")
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    check(c.cmd("RCPT TO:<nobody@example.net>"), 550, "5.1.1", what="RCPT")
    c.quit()
    rec = the_record(d, "reply", client="127.0.0.2")
    assert_fields(rec, {"session": session_of(d, "127.0.0.2"),
                        "user": "alice",
                        "command": "RCPT TO:<nobody@example.net>",
                        "reply": "550 5.1.1",
                        "reply_text": "No such user here",
                        "smarthost": sh.address}, "RCPT refused")

    # MAIL: 552 from the smarthost.
    sh.faults = {"MAIL": b"552 5.3.4 Message too big for us\r\n"}
    c = authed(d, "127.0.0.3")
    check(c.cmd(f"MAIL FROM:<{SENDER}> SIZE=2000"), 552, "5.3.4",
          what="MAIL")
    c.quit()
    rec = the_record(d, "reply", client="127.0.0.3")
    assert_fields(rec, {"user": "alice",
                        "command": f"MAIL FROM:<{SENDER}> SIZE=2000",
                        "reply": "552 5.3.4",
                        "reply_text": "Message too big for us",
                        "smarthost": sh.address}, "MAIL refused")

    # End of data: 554; the message record says so too.
    sh.faults = {"DOT": b"554 5.7.1 Rejected as spam\r\n"}
    c = authed(d, "127.0.0.4")
    out = transact(c, SENDER, rcpts=("bob@example.net",),
                   data=message(mark="spam"))
    check(out.reply, 554, "5.7.1", what="end of data")
    c.quit()
    rec = the_record(d, "reply", client="127.0.0.4")
    assert_fields(rec, {"user": "alice", "command": "END-OF-MESSAGE",
                        "reply": "554 5.7.1",
                        "reply_text": "Rejected as spam",
                        "smarthost": sh.address}, "end of data refused")
    msg = the_record(d, "message", client="127.0.0.4")
    assert_fields(msg, {"reply": "554 5.7.1", "rcpts": "1",
                        "session": rec["session"]}, "message record")
    assert field_values(msg, "to") == ["bob@example.net,250,2.1.5"], \
        msg.line
    assert msg.level == "notice", msg.line


def test_message_record_lists_every_recipient_with_its_answer(authrelay,
                                                              smarthosts):
    sh = smarthosts(reject_rcpt={"nobody@example.net":
                                 "550 5.1.1 No such user"})
    d = authrelay(config=relay_config(
        sh, policy={"sender_check": "off", "user_recipient_rate": "3/60s"}))
    c = authed(d, "127.0.0.2")
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    answers = [("bob@example.net", 250, "2.1.5"),
               ("nobody@example.net", 550, "5.1.1"),
               ("Carol@Example.NET", 250, "2.1.5"),
               # ours: the recipient rate (3 a minute) is spent
               ("dave@example.net", 450, "4.7.1")]
    for rcpt, code, enh in answers:
        check(c.cmd(f"RCPT TO:<{rcpt}>"), code, enh, what=rcpt)
    c.expect("DATA", 354)
    c.send(message(mark="many") + b".\r\n")
    check(c.read_reply(), 250, "2.0.0", what="end of data")
    c.quit()
    msg = the_record(d, "message", client="127.0.0.2")
    assert field_values(msg, "to") == [f"{a},{c},{e}"
                                       for a, c, e in answers], msg.line
    assert_fields(msg, {"rcpts": "2", "user": "alice", "from": SENDER,
                        "reply": "250 2.0.0"}, "message record")
    # One record per message.
    assert len(audit_records(d.log(), "message")) == 1
    assert len(only_message(sh).rcpts) == 2


# --------------------------------------------------------------------------
# TLS failures: session and client on both sides

def wait_closed(sock, timeout=10):
    """Read until the peer closes (bounded: 64 reads, timeout each)."""
    sock.settimeout(timeout)
    for _ in range(64):
        try:
            if not sock.recv(4096):
                return
        except ConnectionResetError:
            return
    raise AssertionError("the server kept sending")


def test_client_tls_failures_carry_session_and_client(authrelay):
    d = authrelay()
    # A client that does not trust our certificate (implicit TLS).
    ctx = ssl.create_default_context()      # the system's CAs, not ours
    sock = tcp_from(d.tls_port, "127.0.0.2")
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(sock, server_hostname="relay.test.example")
    sock.close()
    # A client that speaks plain text after STARTTLS: whatever comes
    # back (an alert), the connection ends.
    c = connect_from(d, "127.0.0.3")
    c.ehlo()
    c.expect("STARTTLS", 220, "2.0.0")
    c.send(b"EHLO client.example.org\r\n" * 4)
    wait_closed(c.sock)
    for ip in ("127.0.0.2", "127.0.0.3"):
        rec = the_record(d, "tls-failure", client=ip)
        assert_fields(rec, {"session": session_of(d, ip), "peer": "client"},
                      f"tls-failure from {ip}")
        assert rec.get("reason") and rec["reason"] != "connection closed", \
            rec.line
    assert "alert" in the_record(d, "tls-failure",
                                 client="127.0.0.2")["reason"]


def test_smarthost_certificate_failure_carries_session_and_client(
        authrelay, smarthosts, pki):
    sh = smarthosts(starttls="self-signed")
    d = authrelay(config=relay_config(sh, tls="starttls", tls_verify=True,
                                      ca_file=str(pki.ca_cert)))
    c = authed(d, "127.0.0.2")
    check(c.cmd(f"MAIL FROM:<{SENDER}>"), 451, "4.4.1", what="MAIL")
    c.quit()
    session = session_of(d, "127.0.0.2")
    rec = wait_record(d, "tls-failure", peer="smarthost")
    assert_fields(rec, {"session": session, "client": "127.0.0.2",
                        "smarthost": sh.address}, "smarthost tls-failure")
    assert rec.get("reason", "").startswith("certificate verification: "), \
        rec.line
    assert rec.level == "warning", rec.line
    reply = the_record(d, "reply", client="127.0.0.2")
    assert_fields(reply, {"session": session,
                          "command": f"MAIL FROM:<{SENDER}>",
                          "reply": "451 4.4.1"}, "the 451")


# --------------------------------------------------------------------------
# AUTH data never

WRONG = "Wr0ng-secret-9"


def test_auth_data_never_in_a_record(authrelay):
    d = authrelay()
    secrets = {b64(WRONG), b64("alice"), plain_response("alice", WRONG),
               plain_response("alice", USERS["alice"]), WRONG,
               b64(USERS["alice"]), USERS["alice"]}
    # Before TLS: AUTH with an initial response, then the LOGIN answers a
    # client sends even though its AUTH LOGIN was refused.
    c = connect_from(d, "127.0.0.2")
    c.ehlo()
    check(c.cmd("AUTH PLAIN " + plain_response("alice", USERS["alice"])),
          530, "5.7.0")
    check(c.cmd("AUTH LOGIN " + b64("alice")), 530, "5.7.0")
    check(c.cmd(b64(WRONG)), 500, "5.5.1")
    c.quit()
    # After TLS: PLAIN and LOGIN with a wrong password, PLAIN without an
    # initial response, a cancelled LOGIN.
    c = session_from(d, "127.0.0.3")
    check(c.auth_plain("alice", WRONG), 535, "5.7.8")
    check(c.auth_login("alice", WRONG), 535, "5.7.8")
    c.expect("AUTH PLAIN", 334)
    check(c.cmd(plain_response("alice", WRONG)), 535, "5.7.8")
    c.expect("AUTH LOGIN", 334)
    c.expect(b64("alice"), 334)
    check(c.cmd("*"), 501)
    c.quit()
    wait_record(d, "disconnect", client="127.0.0.3")
    commands = [(r["client"], r.get("command"), r["reply"])
                for r in audit_records(d.log(), "reply")]
    assert commands == [
        ("127.0.0.2", "AUTH PLAIN", "530 5.7.0"),
        ("127.0.0.2", "AUTH LOGIN", "530 5.7.0"),
        ("127.0.0.2", "(unrecognized)", "500 5.5.1"),
        ("127.0.0.3", "AUTH PLAIN", "535 5.7.8"),
        ("127.0.0.3", "AUTH LOGIN", "535 5.7.8"),
        ("127.0.0.3", "AUTH PLAIN", "535 5.7.8"),
        ("127.0.0.3", "AUTH LOGIN", commands[-1][2]),
    ], commands
    assert commands[-1][2].startswith("501 "), commands
    log = d.log()
    for s in secrets:
        assert s not in log, f"{s[:4]!r}... appears in the log"


# --------------------------------------------------------------------------
# An IPv4 client on a dual-stack socket is IPv4 everywhere

def test_dual_stack_ipv4_client_is_ipv4_everywhere(journal, authrelay,
                                                   smarthosts):
    """As the shipped .socket units listen ([::], dual-stack): records and
    journal fields, Received, XCLIENT ADDR= all say 127.0.0.1."""
    sh = smarthosts(xclient=True, reject_rcpt={"nobody@example.net":
                                               "550 5.1.1 No such user"})
    d = start_in_journal(authrelay, journal,
                         config=relay_config(sh, xclient=True),
                         socket_activation=("submission",),
                         activation_host="[::]")
    d.trigger.close()
    d.trigger = None
    port = d.activation_ports["submission"]
    c = SMTPRaw(port, host="127.0.0.1")
    c.ehlo()
    c.starttls(d.tls_context)
    c.ehlo()
    check(c.auth_plain("alice", USERS["alice"]), 235, "2.7.0")
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    c.expect("RCPT TO:<bob@example.net>", 250)
    check(c.cmd("RCPT TO:<nobody@example.net>"), 550, "5.1.1")
    c.expect("DATA", 354)
    c.send(message(mark="dual") + b".\r\n")
    check(c.read_reply(), 250, "2.0.0")
    c.quit()

    m = journal.wait_entry(AUTHRELAY_EVENT="message",
                           AUTHRELAY_MESSAGE_ID="<dual@client.example.org>")
    session = m["AUTHRELAY_SESSION"]
    journal.wait_entry(AUTHRELAY_EVENT="disconnect", AUTHRELAY_SESSION=session)
    entries = [e for e in journal.entries("SYSLOG_IDENTIFIER=authrelay")
               if e.get("AUTHRELAY_SESSION") == session]
    events = [e["AUTHRELAY_EVENT"] for e in entries]
    assert events == ["connect", "tls", "auth-ok", "reply", "message",
                      "disconnect"], events
    for e in entries:
        assert e.get("AUTHRELAY_CLIENT") == "127.0.0.1", e
        assert "client=127.0.0.1 " in e["MESSAGE"], e["MESSAGE"]
    assert m["AUTHRELAY_TO"] == ["bob@example.net,250,2.1.5",
                                 "nobody@example.net,550,5.1.1"], m
    reply = entries[events.index("reply")]
    assert reply.get("AUTHRELAY_COMMAND") == "RCPT TO:<nobody@example.net>" \
        and reply.get("AUTHRELAY_REPLY") == "550 5.1.1" \
        and reply.get("AUTHRELAY_SMARTHOST") == sh.address, reply
    assert b"::ffff:" not in journal.run("-o", "export")

    received = split_tagged(only_message(sh).data)[0]
    assert received.group("ip") == b"127.0.0.1", received.group(0)
    assert sh.sessions[0].xclient == [
        b"XCLIENT LOGIN=alice ADDR=127.0.0.1 NAME=[UNAVAILABLE]"], \
        sh.sessions[0].xclient


def test_dual_stack_ipv4_client_counts_under_its_ipv4_address(authrelay):
    """max_connections_per_ip counts an IPv4 client that came in on the
    dual-stack sockets under its IPv4 address, and the refusal says so."""
    d = authrelay(config={"server": {"max_connections_per_ip": 2}},
                  socket_activation=("submission", "submissions"),
                  activation_host="[::]")
    ports = d.activation_ports
    held = [SMTPRaw(None, sock=d.trigger),
            SMTPRaw(ports["submissions"], host="127.0.0.1",
                    tls_context=d.tls_context)]
    d.trigger = None
    third = socket.create_connection(("127.0.0.1", ports["submission"]),
                                     timeout=10)
    third.settimeout(10)
    try:
        data = third.recv(4096)
    except ConnectionResetError:
        data = b""
    third.close()
    assert data.startswith(b"421 4.7.0"), f"third connection: got {data!r}"
    rec = the_record(d, "connection-refused", client="127.0.0.1")
    assert_fields(rec, {"reason": "max_connections_per_ip reached",
                        "reply": "421 4.7.0"}, "refused connection")
    for c in held:
        c.quit()
    clients = {r["client"] for r in audit_records(d.log())
               if "client" in r}
    assert clients == {"127.0.0.1"}, clients
