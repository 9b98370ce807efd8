"""Audit records (issue 5): one record per event (connect, tls, auth-ok,
auth-failure, message, ..., disconnect).

Under systemd (stderr is the journal stream JOURNAL_STREAM names) each is
a journal entry sent with sd_journal_sendv: MESSAGE= the text form, and
AUTHRELAY_EVENT=, AUTHRELAY_SESSION=, AUTHRELAY_CLIENT=, AUTHRELAY_USER=,
... fields. The test starts a real systemd-journald in a private mount
namespace, runs the daemon in that namespace with its stderr connected to
journald as systemd does for a service, and reads the fields back with
journalctl -o json.

Elsewhere each is one line on stderr:
    authrelay[PID]: LEVEL: EVENT key=value key="value with spaces" ...

No password, nor its base64 forms, appears in any record.
"""

import re

from conftest import USERS
from harness import b64, check, plain_response
from policy_helpers import (OTHER_IP, audit_records, authed_from,
                            field_values, marker, message, session_from,
                            start_in_journal, transact, wait_record)
from policy_helpers import journal  # noqa: F401 (fixture)

WRONG = "Wr0ng-Pässwörd-§42"
RCPTS = ("bob@example.net", "carol@example.net")


def secrets():
    """Every form a password could leak in: plain, UTF-8 bytes, the
    AUTH PLAIN response and the AUTH LOGIN password line."""
    out = set()
    for user, pw in [("alice", USERS["alice"]), ("alice", WRONG),
                     ("bob", USERS["bob"])]:
        out.add(pw.encode("utf-8"))
        out.add(b64(pw).encode())
        out.add(plain_response(user, pw).encode())
        # The PLAIN blob's decoded form, NULs and all.
        out.add(b"\0" + user.encode() + b"\0" + pw.encode("utf-8"))
    return out


def assert_no_secret(blob, where):
    for s in secrets():
        assert s not in blob, f"a password ({s[:4]!r}...) appears in {where}"


def exercise(d, smarthost, source_ip=OTHER_IP):
    """A delivered message, a failed PLAIN and a failed LOGIN; returns
    (message marker, the message sent, the smarthost's envelope)."""
    c = session_from(d, source_ip)
    check(c.auth_plain("alice", WRONG), 535, "5.7.8", "wrong password")
    check(c.auth_login("alice", WRONG), 535, "5.7.8", "wrong LOGIN")
    check(c.auth_login("alice", USERS["alice"]), 235, "2.7.0", "LOGIN")
    mark = marker()
    data = message(mark=mark)
    out = transact(c, "alice@example.com", rcpts=RCPTS, data=data)
    assert out.code == 250, f"got {out!r}"
    c.quit()
    env = smarthost.wait_for(mark.encode())
    assert env is not None
    return mark, data, env


# --------------------------------------------------------------------------
# The journal

def test_journal_fields_of_message_and_auth_failure(journal, authrelay,
                                                     smarthost):
    d = start_in_journal(authrelay, journal)
    mark, data, env = exercise(d, smarthost)
    queue_id = f"T{smarthost.messages.index(env) + 1:05d}"

    m = journal.wait_entry(AUTHRELAY_EVENT="message",
                           AUTHRELAY_MESSAGE_ID=f"<{mark}@client.example.org>")
    want = {
        "SYSLOG_IDENTIFIER": "authrelay",
        "PRIORITY": "6",
        "_PID": str(d.net_pid),
        "AUTHRELAY_USER": "alice",
        "AUTHRELAY_CLIENT": OTHER_IP,
        "AUTHRELAY_FROM": "alice@example.com",
        "AUTHRELAY_RCPTS": "2",
        "AUTHRELAY_SMARTHOST": f"127.0.0.1:{smarthost.port}",
        "AUTHRELAY_REPLY": "250 2.0.0",
        "AUTHRELAY_QUEUE_ID": queue_id,
    }
    problems = [f"{k}: got {m.get(k)!r}, want {v!r}"
                for k, v in want.items() if m.get(k) != v]
    size = m.get("AUTHRELAY_SIZE", "")
    if not size.isdigit() or not len(data) <= int(size) <= len(data) + 2:
        problems.append(f"AUTHRELAY_SIZE: got {size!r}, want the message's "
                        f"size, {len(data)} octets")
    if not m.get("AUTHRELAY_DURATION_MS", "").isdigit():
        problems.append(f"AUTHRELAY_DURATION_MS: got "
                        f"{m.get('AUTHRELAY_DURATION_MS')!r}")
    if not m.get("AUTHRELAY_SESSION", "").isdigit():
        problems.append(f"AUTHRELAY_SESSION: got "
                        f"{m.get('AUTHRELAY_SESSION')!r}")
    if "queued as " + queue_id not in m.get("AUTHRELAY_REPLY_TEXT", ""):
        problems.append(f"AUTHRELAY_REPLY_TEXT: got "
                        f"{m.get('AUTHRELAY_REPLY_TEXT')!r}")
    msg = m.get("MESSAGE", "")
    if not msg.startswith("message session=" + m.get("AUTHRELAY_SESSION", "")):
        problems.append(f"MESSAGE: got {msg!r}, want the text form")
    for part in ("user=alice", f"client={OTHER_IP}", f"queue_id={queue_id}",
                 f"message_id=<{mark}@client.example.org>"):
        if part not in msg:
            problems.append(f"MESSAGE lacks {part!r}: {msg!r}")
    assert not problems, "message record:\n" + "\n".join(problems)

    session = m["AUTHRELAY_SESSION"]
    fails = [e for e in journal.entries("AUTHRELAY_EVENT=auth-failure")
             if e.get("AUTHRELAY_SESSION") == session]
    assert len(fails) == 2, f"got {len(fails)} auth-failure entries for " \
        f"session {session}, want 2 (PLAIN and LOGIN)"
    for f in fails:
        want = {"AUTHRELAY_USER": "alice", "AUTHRELAY_CLIENT": OTHER_IP,
                "PRIORITY": "5", "SYSLOG_IDENTIFIER": "authrelay",
                "_PID": str(d.net_pid)}
        bad = {k: f.get(k) for k, v in want.items() if f.get(k) != v}
        assert not bad, f"auth-failure entry: got {bad}, want {want}"
        assert f.get("AUTHRELAY_REASON"), "auth-failure without a reason"
        assert f["MESSAGE"].startswith(
            f"auth-failure session={session} client={OTHER_IP} user=alice"), \
            f"MESSAGE: got {f['MESSAGE']!r}"

    # The session's other records, in order (disconnect is the last).
    journal.wait_entry(AUTHRELAY_EVENT="disconnect", AUTHRELAY_SESSION=session)
    events = [e["AUTHRELAY_EVENT"]
              for e in journal.entries("SYSLOG_IDENTIFIER=authrelay")
              if e.get("AUTHRELAY_SESSION") == session]
    # Each refused login: its auth-failure, then the 535 reply record.
    assert events == ["connect", "tls", "auth-failure", "reply",
                      "auth-failure", "reply", "auth-ok", "message",
                      "disconnect"], f"got {events}"
    for e in journal.entries("AUTHRELAY_EVENT=reply"):
        if e.get("AUTHRELAY_SESSION") == session:
            assert e.get("AUTHRELAY_REPLY") == "535 5.7.8" and \
                e.get("AUTHRELAY_COMMAND") in ("AUTH PLAIN", "AUTH LOGIN") \
                and e.get("AUTHRELAY_CLIENT") == OTHER_IP, f"reply: {e}"
    # Every recipient with the smarthost's answer, one field each.
    assert m.get("AUTHRELAY_TO") == [f"{r},250,2.1.5" for r in RCPTS], \
        f"AUTHRELAY_TO: got {m.get('AUTHRELAY_TO')!r}"
    ok = journal.wait_entry(AUTHRELAY_EVENT="auth-ok",
                            AUTHRELAY_SESSION=session)
    assert ok.get("AUTHRELAY_USER") == "alice" and \
        ok.get("AUTHRELAY_LOGIN") == "alice", f"auth-ok: {ok}"
    conn = journal.wait_entry(AUTHRELAY_EVENT="connect",
                              AUTHRELAY_SESSION=session)
    assert conn.get("AUTHRELAY_LISTENER") == "starttls" and \
        conn.get("AUTHRELAY_PORT", "").isdigit(), f"connect: {conn}"
    tls = journal.wait_entry(AUTHRELAY_EVENT="tls", AUTHRELAY_SESSION=session)
    assert tls.get("AUTHRELAY_VERSION", "").startswith("TLSv1."), f"{tls}"
    bye = journal.wait_entry(AUTHRELAY_EVENT="disconnect",
                             AUTHRELAY_SESSION=session)
    assert bye.get("AUTHRELAY_MESSAGES") == "1" and \
        bye.get("AUTHRELAY_AUTH_FAILURES") == "2", f"disconnect: {bye}"

    # Nothing on the daemon's plain stderr file: it all went to journald.
    assert d.log() == "", f"stderr file not empty: {d.log()!r}"


def test_no_password_anywhere_in_the_journal(journal, authrelay, smarthost):
    d = start_in_journal(authrelay, journal, config={"auth": {
        "cache_ttl": "60s"}})
    exercise(d, smarthost)
    # A cached login, a refused cached name, and bob's.
    c = authed_from(d, OTHER_IP, "alice")
    c.quit()
    c = session_from(d, OTHER_IP)
    check(c.auth_plain("alice", WRONG), 535, "5.7.8")
    c.close()
    c = authed_from(d, "127.0.0.1", "bob")
    c.quit()
    journal.wait_entry(AUTHRELAY_EVENT="auth-ok", AUTHRELAY_USER="bob",
                       AUTHRELAY_CACHED="no")
    journal.wait_entry(AUTHRELAY_EVENT="auth-ok", AUTHRELAY_USER="alice",
                       AUTHRELAY_CACHED="yes")
    # Everything journald has, every field of every entry (export
    # format), the workers' and journald's own included.
    blob = journal.run("-o", "export")
    assert b"AUTHRELAY_EVENT=auth-failure" in blob
    assert_no_secret(blob, "the journal")


# --------------------------------------------------------------------------
# stderr

LINE = re.compile(r"^authrelay\[(\d+)\]: (error|warning|notice|info|debug): "
                  r"(\S+)(.*)$")


def test_stderr_one_line_per_event(authrelay, smarthost):
    d = authrelay()
    mark, data, env = exercise(d, smarthost)
    rec = wait_record(d, "message",
                      message_id=f"<{mark}@client.example.org>")
    session = rec["session"]
    wait_record(d, "disconnect", session=session)
    log = d.log()
    for line in log.splitlines():
        m = LINE.match(line)
        assert m, f"stderr line not in the format: {line!r}"
    recs = [r for r in audit_records(log) if r.get("session") == session]
    assert [r.event for r in recs] == [
        "connect", "tls", "auth-failure", "reply", "auth-failure", "reply",
        "auth-ok", "message", "disconnect"], f"got {[r.event for r in recs]}"
    assert field_values(rec, "to") == [f"{r},250,2.1.5" for r in RCPTS], \
        rec.line
    for r in recs:
        assert r.pid == d.net_pid, f"got pid {r.pid}, want {d.net_pid}: {r.line}"
        assert r["client"] == OTHER_IP, r.line
    levels = {r.event: r.level for r in recs}
    assert levels["auth-failure"] == "notice", levels
    assert levels["auth-ok"] == "info" and levels["message"] == "info"
    assert rec["user"] == "alice" and rec["from"] == "alice@example.com"
    assert rec["rcpts"] == "2" and rec["reply"] == "250 2.0.0"
    queue_id = f"T{smarthost.messages.index(env) + 1:05d}"
    assert rec["queue_id"] == queue_id
    # A value with spaces is quoted, so the line splits back.
    assert f'reply_text="Ok: queued as {queue_id}"' in rec.line or \
        f'reply_text="2.0.0 Ok: queued as {queue_id}"' in rec.line, rec.line
    assert int(rec["size"]) >= len(data)
    fail = [r for r in recs if r.event == "auth-failure"][0]
    assert fail["user"] == "alice" and fail.get("reason"), fail.line
    assert_no_secret(log.encode("utf-8"), "stderr")


def test_stderr_values_cannot_forge_records(authrelay):
    """A login name with a line break, quotes, spaces or '=' cannot
    forge a record or a field: it stays in its own field of its line."""
    d = authrelay()
    c = session_from(d, "127.0.0.1")
    evil = "x\nauthrelay[1]: info: auth-ok session=1 client=6.6.6.6 user=admin"
    r = c.auth_plain(evil, "whatever-1")
    assert r.code in (501, 535), f"got {r.first_line!r}"
    spaced = 'x client=6.6.6.6 user=admin reason="ok"'
    check(c.auth_plain(spaced, "whatever-2"), 535, "5.7.8")
    quoted = 'a "b" c=d\\e'
    check(c.auth_plain(quoted, "whatever-3"), 535, "5.7.8")
    c.quit()
    wait_record(d, "disconnect")
    log = d.log()
    assert not audit_records(log, "auth-ok"), f"a forged auth-ok:\n{log}"
    assert all(r["client"] == "127.0.0.1" for r in audit_records(log)), log
    users = [r["user"] for r in audit_records(log, "auth-failure")]
    assert users[-2:] == [spaced, quoted], \
        f"got user fields {users!r}, want the login names back exactly"


def test_stderr_when_journal_stream_does_not_match(authrelay, smarthost):
    """JOURNAL_STREAM naming some other stream (a service that started
    us with its stderr redirected) means stderr lines, not journal."""
    d = authrelay(env={"JOURNAL_STREAM": "8:12345"})
    c = authed_from(d, "127.0.0.1")
    c.quit()
    rec = wait_record(d, "auth-ok", user="alice")
    assert rec.pid == d.net_pid
