"""Sender check ([policy] sender_check = off | envelope | header | both,
allow_null_sender, send_as; issue 5, SPEC "What a session guarantees").

The user is the PAM user alice (pam_matrix), whose one address is
alice@<[pam] address_domain>; send_as adds shared addresses for members
of an NSS group (nss_wrapper: alice and carol are in mail-senders, bob is
in staff). A refused envelope sender gets 553 5.7.1 at MAIL; a refused
From:/Sender: gets 553 5.7.1 at the end of DATA, and nothing of that
message reaches the smarthost.

Each table is run case by case, each case in a session of its own; a
test reports every case that went wrong as "got X, want Y".
"""

import pytest

from harness import check
from policy_helpers import (authed_from, marker, message, transact,
                            wait_record)

OK, REFUSED = "delivered", "553"
ALICE = "alice@example.com"


def policy(mode, **extra):
    return {"policy": {"sender_check": mode, **extra}}


def run_case(d, smarthost, mail_from, from_header=None, user="alice",
             headers=b"", data=None):
    """One transaction in a fresh session -> (verdict, Outcome, marker).
    verdict: "delivered" (250 at the end of data and the message at the
    smarthost), "553" (553 5.7.1 at MAIL or at the end of data), or the
    reply's first line for anything else."""
    mark = marker()
    if data is None:
        data = message(from_header, mark, headers=headers)
    else:
        data = data.replace(b"MARK", mark.encode())
    c = authed_from(d, "127.0.0.1", user)
    try:
        out = transact(c, mail_from, data=data)
    finally:
        c.close()
    if out.code == 250 and out.stage == "end of data":
        env = smarthost.wait_for(mark.encode(), timeout=10)
        return (OK if env is not None else "250 but not at the smarthost",
                out, mark)
    if out.code == 553 and out.reply.enhanced == "5.7.1":
        return REFUSED, out, mark
    return f"{out!r}", out, mark


def assert_table(d, smarthost, cases, mail_from=ALICE, user="alice",
                 refused_stage="end of data"):
    """cases: (from_header bytes/str, want). Every refusal must come at
    refused_stage and leave nothing at the smarthost."""
    problems, refused_marks = [], []
    for from_header, want in cases:
        got, out, mark = run_case(d, smarthost, mail_from, from_header,
                                  user=user)
        if got != want:
            problems.append(f"From: {from_header!r}: got {got} "
                            f"({out!r}), want {want}")
        elif got == REFUSED:
            if out.stage != refused_stage:
                problems.append(f"From: {from_header!r}: refused at "
                                f"{out.stage}, want at {refused_stage}")
            refused_marks.append(mark)
    # The accepted ones have arrived (waited for above), so a refused
    # one that had been passed on would be there by now too.
    for env in list(smarthost.messages):
        for mark in refused_marks:
            if mark.encode() in env.original_content:
                problems.append(f"refused message {mark} reached the "
                                f"smarthost")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# From: headers as mail programs, web mailers, scripts and forgers write
# them, for the user alice@example.com.

FROM_TABLE = [
    # Plain forms
    (b"alice@example.com", OK),
    (b"<alice@example.com>", OK),
    (b"Alice <alice@example.com>", OK),
    (b"Alice<alice@example.com>", OK),
    (b"Alice Smith <alice@example.com>", OK),
    # Outlook: "Last, First" quoted, commas and all
    (b'"Smith, Alice" <alice@example.com>', OK),
    (b'"Smith, Alice (IT)" <alice@example.com>', OK),
    (b'"Alice \\"The Boss\\" Smith" <alice@example.com>', OK),
    # RFC 2047 encoded words (Thunderbird, Apple Mail with non-ASCII names)
    (b"=?UTF-8?B?w4RsaWNlIFNtacOfaA==?= <alice@example.com>", OK),
    (b"=?ISO-8859-1?Q?Alice_M=FCller?= <alice@example.com>", OK),
    (b'"=?utf-8?q?Alice?=" <alice@example.com>', OK),
    # Comments, also nested, before and after
    (b"alice@example.com (Alice Smith)", OK),
    (b"(Alice) alice@example.com", OK),
    (b"alice@example.com (Alice (the boss) Smith)", OK),
    (b"Alice (Work) <alice@example.com>", OK),
    # Folded over several lines (long display names)
    (b"Alice Smith\r\n <alice@example.com>", OK),
    (b'"Smith, Alice"\r\n\t<alice@example.com>', OK),
    (b"\r\n Alice <alice@example.com>", OK),
    # Case: domain always, local part in ASCII
    (b"Alice <alice@EXAMPLE.COM>", OK),
    (b"Alice <ALICE@Example.Com>", OK),
    # Quoting that changes nothing
    (b'"alice"@example.com', OK),
    (b'Alice <"alice"@example.com>', OK),
    # A group of one: alice herself
    (b"Team: Alice <alice@example.com>;", OK),
    # Another address in the display name or a comment is just text
    (b'"bob@example.com" <alice@example.com>', OK),
    (b'"bob@example.com via Alice" <alice@example.com>', OK),
    (b"Alice <alice@example.com> (sent for bob@example.com)", OK),

    # Someone else's address, however dressed
    (b"bob@example.com", REFUSED),
    (b"Alice <bob@example.com>", REFUSED),
    (b'"alice@example.com" <bob@example.com>', REFUSED),
    (b'"Alice <alice@example.com>" <bob@example.com>', REFUSED),
    (b"=?UTF-8?B?YWxpY2VAZXhhbXBsZS5jb20=?= <bob@example.com>", REFUSED),
    (b"bob@example.com (alice@example.com)", REFUSED),
    (b"(alice@example.com) bob@example.com", REFUSED),
    (b"Bob\r\n <bob@example.com>", REFUSED),
    # Several mailboxes: every one must be hers
    (b"alice@example.com, bob@example.com", REFUSED),
    (b"Alice <alice@example.com>, Bob <bob@example.com>", REFUSED),
    (b"Team: alice@example.com, bob@example.com;", REFUSED),
    # Look-alike domains and local parts
    (b"alice@example.com.evil.test", REFUSED),
    (b"alice@evil.example.com", REFUSED),
    (b"alice@example.co", REFUSED),
    (b"alice@examp1e.com", REFUSED),
    (b"alicex@example.com", REFUSED),
    (b"alice.smith@example.com", REFUSED),
    (b'"alice@example.com"@evil.test', REFUSED),
    (b"alice%example.com@evil.test", REFUSED),
    (b"alice@[127.0.0.1]", REFUSED),
    # Non-ASCII that folds to "alice" only outside ASCII (dotless/dotted
    # i, Kelvin-sign style tricks): not her address
    ("AL\u0130CE@example.com".encode("utf-8"), REFUSED),
    ("\u0430lice@example.com".encode("utf-8"), REFUSED),   # Cyrillic a
    # Not a mailbox at all
    (b"alice", REFUSED),
    (b"", REFUSED),
    (b"undisclosed-recipients:;", REFUSED),
    (b"<alice@example.com", REFUSED),
    (b"Alice <alice@example.com> <bob@example.com>", REFUSED),
]


def test_from_table_has_enough_real_world_cases():
    assert len(FROM_TABLE) >= 20
    assert {w for _f, w in FROM_TABLE} == {OK, REFUSED}


def test_header_mode_from_table(authrelay, smarthost):
    """sender_check = header: each From: of the table, with the user's
    own envelope sender."""
    d = authrelay(config=policy("header"))
    assert_table(d, smarthost, FROM_TABLE)


def test_header_mode_ignores_the_envelope(authrelay, smarthost):
    """header: a foreign envelope sender (bounces to a list, say) is
    fine when the From: is hers."""
    d = authrelay(config=policy("header"))
    assert_table(d, smarthost, [(b"Alice <alice@example.com>", OK),
                                (b"Bob <bob@example.com>", REFUSED)],
                 mail_from="bounces+x@lists.example.org")


def test_both_mode_from_table(authrelay, smarthost):
    """both: with her own envelope sender, the From: table decides."""
    d = authrelay(config=policy("both"))
    assert_table(d, smarthost, FROM_TABLE)


def test_envelope_mode_ignores_the_header(authrelay, smarthost):
    """envelope: any From: passes once MAIL FROM is hers (the From:
    table's refusals included)."""
    d = authrelay(config=policy("envelope"))
    cases = [(f, OK) for f, w in FROM_TABLE
             if w == REFUSED and f not in (b"", b"<alice@example.com",
                                           b"alice")][:12]
    assert_table(d, smarthost, cases)


def test_off_mode_checks_nothing(authrelay, smarthost):
    d = authrelay(config=policy("off"))
    for mail_from in ("bob@example.com", "ceo@evil.test", ""):
        got, out, _ = run_case(d, smarthost, mail_from,
                               b"The CEO <ceo@example.com>")
        assert got == OK, f"MAIL FROM:<{mail_from}>: got {got} ({out!r}), " \
            f"want {OK}"


# --------------------------------------------------------------------------
# Envelope senders

ENVELOPE_TABLE = [
    ("alice@example.com", OK),
    ("ALICE@EXAMPLE.COM", OK),
    ("alice@Example.Com", OK),
    ("Alice@example.com", OK),
    ("bob@example.com", REFUSED),
    ("alice@example.org", REFUSED),
    ("alice@sub.example.com", REFUSED),
    ("alice@example.com.evil.test", REFUSED),
    ("alice.smith@example.com", REFUSED),
    ("alice+tag@example.com", REFUSED),
    ("alice@[127.0.0.1]", REFUSED),
    ("alice@localhost", REFUSED),
    ("", REFUSED),      # null sender: not for submission by default
]


@pytest.mark.parametrize("mode", ["envelope", "both"])
def test_envelope_table(authrelay, smarthost, mode):
    d = authrelay(config=policy(mode))
    problems = []
    for mail_from, want in ENVELOPE_TABLE:
        got, out, _ = run_case(d, smarthost, mail_from,
                               b"Alice <alice@example.com>")
        if got != want:
            problems.append(f"MAIL FROM:<{mail_from}>: got {got} "
                            f"({out!r}), want {want}")
        elif got == REFUSED and out.stage != "MAIL":
            problems.append(f"MAIL FROM:<{mail_from}>: refused at "
                            f"{out.stage}, want at MAIL")
    assert not problems, "\n".join(problems)


def test_envelope_refusal_names_the_address_and_is_audited(authrelay,
                                                           smarthost):
    d = authrelay(config=policy("envelope"))
    c = authed_from(d, "127.0.0.1")
    r = check(c.cmd("MAIL FROM:<bob@example.com>"), 553, "5.7.1")
    assert "<bob@example.com>" in r.text, \
        f"got {r.first_line!r}, want the refused address named"
    # The session goes on: the right sender is accepted next.
    out = transact(c, ALICE, data=message(mark=marker()))
    assert out.code == 250, f"got {out!r}, want 250 after a refusal"
    c.quit()
    rec = wait_record(d, "sender-refused", user="alice")
    assert rec["from"] == "bob@example.com", f"got {rec.line!r}"


def test_header_mode_parameters_on_mail_do_not_matter(authrelay, smarthost):
    d = authrelay(config=policy("both"))
    c = authed_from(d, "127.0.0.1")
    mark = marker()
    out = transact(c, ALICE, data=message(mark=mark),
                   mail_params=" SIZE=1000 BODY=8BITMIME")
    assert out.code == 250, f"got {out!r}"
    c.quit()


# --------------------------------------------------------------------------
# The null sender

@pytest.mark.parametrize("mode", ["envelope", "both"])
def test_null_sender_refused_by_default(authrelay, smarthost, mode):
    d = authrelay(config=policy(mode))
    c = authed_from(d, "127.0.0.1")
    check(c.cmd("MAIL FROM:<>"), 553, "5.7.1", "MAIL FROM:<>")
    c.quit()


def test_null_sender_allowed_when_configured(authrelay, smarthost):
    d = authrelay(config=policy("both", allow_null_sender="yes"))
    got, out, _ = run_case(d, smarthost, "", b"Alice <alice@example.com>")
    assert got == OK, f"got {got} ({out!r}), want {OK}"
    # ... but the From: is still checked.
    got, out, _ = run_case(d, smarthost, "", b"Bob <bob@example.com>")
    assert got == REFUSED and out.stage == "end of data", \
        f"got {got} at {out.stage}, want 553 at the end of data"


def test_null_sender_not_checked_in_header_mode(authrelay, smarthost):
    """header alone does not look at the envelope at all."""
    d = authrelay(config=policy("header"))
    got, out, _ = run_case(d, smarthost, "", b"Alice <alice@example.com>")
    assert got == OK, f"got {got} ({out!r}), want {OK}"


# --------------------------------------------------------------------------
# From: and Sender: header fields as a whole

def with_headers(*lines, body=b"Hello.\r\nFrom: bob@example.com in the "
                 b"body is text.\r\n"):
    """A message with exactly these header lines (plus To/Subject/
    Message-ID carrying the marker)."""
    return (b"".join(lines) +
            b"To: bob@example.net\r\nSubject: MARK\r\n"
            b"Message-ID: <MARK@client.example.org>\r\n\r\n" + body)


HEADER_SECTION_TABLE = [
    ("one From:", with_headers(b"From: alice@example.com\r\n"), OK),
    ("From: and own Sender:",
     with_headers(b"From: alice@example.com\r\n",
                  b"Sender: Alice <alice@example.com>\r\n"), OK),
    ("foreign Sender:",
     with_headers(b"From: alice@example.com\r\n",
                  b"Sender: bob@example.com\r\n"), REFUSED),
    ("foreign From:, own Sender:",
     with_headers(b"From: bob@example.com\r\n",
                  b"Sender: alice@example.com\r\n"), REFUSED),
    ("Sender: with two mailboxes",
     with_headers(b"From: alice@example.com\r\n",
                  b"Sender: alice@example.com, alice@example.com\r\n"),
     REFUSED),
    ("no From:", with_headers(), REFUSED),
    ("two From: fields, both hers",
     with_headers(b"From: alice@example.com\r\n",
                  b"From: Alice <alice@example.com>\r\n"), REFUSED),
    ("second From: foreign, further down",
     with_headers(b"From: alice@example.com\r\n",
                  b"X-Mailer: test\r\n",
                  b"From: bob@example.com\r\n"), REFUSED),
    ("field name in upper case",
     with_headers(b"FROM: bob@example.com\r\n"), REFUSED),
    ("field name in lower case, hers",
     with_headers(b"from: alice@example.com\r\n"), OK),
    ("space before the colon (obsolete syntax)",
     with_headers(b"From : bob@example.com\r\n"), REFUSED),
    ("From: at the very end of the header section",
     with_headers(b"X-Mailer: test\r\n", b"From: bob@example.com\r\n"),
     REFUSED),
    ("folded foreign address",
     with_headers(b"From: Alice\r\n <bob@\r\n example.com>\r\n"), REFUSED),
    ("other fields that name senders do not count",
     with_headers(b"From: alice@example.com\r\n",
                  b"Reply-To: bob@example.com\r\n",
                  b"X-Original-From: bob@example.com\r\n",
                  b"Resent-From: bob@example.com\r\n",
                  b"Return-Path: <bob@example.com>\r\n"), OK),
    ("From: in the body only",
     b"To: bob@example.net\r\nSubject: MARK\r\n\r\n"
     b"From: alice@example.com\r\n", REFUSED),
]


@pytest.mark.parametrize("mode", ["header", "both"])
def test_header_section_table(authrelay, smarthost, mode):
    d = authrelay(config=policy(mode))
    problems = []
    for what, data, want in HEADER_SECTION_TABLE:
        got, out, _ = run_case(d, smarthost, ALICE, data=data)
        if got != want:
            problems.append(f"{what}: got {got} ({out!r}), want {want}")
        elif got == REFUSED and out.stage != "end of data":
            problems.append(f"{what}: refused at {out.stage}, want at "
                            f"the end of data")
    assert not problems, "\n".join(problems)


def test_header_refusal_delivers_nothing_and_is_audited(authrelay,
                                                       smarthost):
    d = authrelay(config=policy("header"))
    c = authed_from(d, "127.0.0.1")
    mark = marker()
    before = len(smarthost.messages)
    out = transact(c, ALICE, data=message(b"Bob <bob@example.com>", mark))
    check(out.reply, 553, "5.7.1", "end of data")
    assert out.stage == "end of data"
    assert "bob@example.com" in out.reply.text, \
        f"got {out.reply.first_line!r}, want the address named"
    # The session is usable afterwards, and the next message arrives
    # alone: the refused one was never ended upstream.
    good = marker()
    out = transact(c, ALICE, data=message(mark=good))
    check(out.reply, 250, None, "next message")
    assert smarthost.wait_for(good.encode()) is not None
    c.quit()
    arrived = smarthost.messages[before:]
    assert not any(mark.encode() in e.original_content for e in arrived), \
        "the refused message reached the smarthost"
    rec = wait_record(d, "sender-refused", user="alice")
    assert rec["message_id"] == f"<{mark}@client.example.org>", \
        f"got {rec.line!r}"


# --------------------------------------------------------------------------
# send_as: members of a group may send as a shared address

SEND_AS = {"policy": {"sender_check": "both",
                      "send_as": ["helpdesk@example.com mail-senders",
                                  "office@example.com staff"]}}


def test_send_as_member_may_use_the_shared_address(authrelay, smarthost):
    """alice is in mail-senders: helpdesk@ as envelope and From:, and
    still her own address; not office@ (staff)."""
    d = authrelay(config=SEND_AS, nss=True)
    cases = [
        ("helpdesk@example.com", b"IT Helpdesk <helpdesk@example.com>", OK),
        ("HelpDesk@Example.com", b"helpdesk@example.com", OK),
        ("alice@example.com", b"IT Helpdesk <helpdesk@example.com>", OK),
        ("helpdesk@example.com", b"Alice <alice@example.com>", OK),
        ("helpdesk@example.com",
         b"Alice <alice@example.com>, Helpdesk <helpdesk@example.com>", OK),
        ("office@example.com", b"Office <office@example.com>", REFUSED),
        ("alice@example.com", b"Office <office@example.com>", REFUSED),
    ]
    problems = []
    for user in ("alice", "carol"):
        own = f"{user}@example.com"
        for mail_from, from_header, want in cases:
            mail_from = mail_from.replace("alice@", own.split("@")[0] + "@")
            from_header = from_header.replace(
                b"alice@", own.split("@")[0].encode() + b"@")
            got, out, _ = run_case(d, smarthost, mail_from, from_header,
                                   user=user)
            if got != want:
                problems.append(f"{user}: MAIL FROM:<{mail_from}> From: "
                                f"{from_header!r}: got {got} ({out!r}), "
                                f"want {want}")
    assert not problems, "\n".join(problems)


def test_send_as_non_member_is_refused(authrelay, smarthost):
    """bob is not in mail-senders: helpdesk@ is refused, at MAIL (both)
    and in From: (header); his staff address office@ works."""
    d = authrelay(config=SEND_AS, nss=True)
    cases = [
        ("helpdesk@example.com", b"helpdesk@example.com", REFUSED, "MAIL"),
        ("bob@example.com", b"Helpdesk <helpdesk@example.com>", REFUSED,
         "end of data"),
        ("office@example.com", b"Office <office@example.com>", OK, None),
        ("bob@example.com", b"Bob <bob@example.com>", OK, None),
    ]
    problems = []
    for mail_from, from_header, want, stage in cases:
        got, out, _ = run_case(d, smarthost, mail_from, from_header,
                               user="bob")
        if got != want or (stage and out.stage != stage):
            problems.append(f"bob: MAIL FROM:<{mail_from}> From: "
                            f"{from_header!r}: got {got} at {out.stage}, "
                            f"want {want}" + (f" at {stage}" if stage
                                              else ""))
    assert not problems, "\n".join(problems)


def test_send_as_user_unknown_to_nss_keeps_own_address(authrelay, smarthost):
    """dave is in pam_matrix but not in NSS: no group, so no shared
    address, but he logs in and sends as himself."""
    d = authrelay(config=SEND_AS, nss=True)
    got, out, _ = run_case(d, smarthost, "dave@example.com",
                           b"dave@example.com", user="dave")
    assert got == OK, f"got {got} ({out!r}), want {OK}"
    got, out, _ = run_case(d, smarthost, "helpdesk@example.com",
                           b"helpdesk@example.com", user="dave")
    assert got == REFUSED, f"got {got} ({out!r}), want {REFUSED}"


# --------------------------------------------------------------------------
# PAM users: their address is user@address_domain

def test_pam_address_domain(authrelay, smarthost):
    d = authrelay(config={"policy": {"sender_check": "both"},
                          "pam": {"address_domain": "corp.example.net"}})
    problems = []
    for mail_from, from_header, want in [
            ("alice@corp.example.net", b"Alice <alice@corp.example.net>", OK),
            ("ALICE@CORP.EXAMPLE.NET", b"alice@Corp.Example.Net", OK),
            ("alice@example.com", b"Alice <alice@corp.example.net>",
             REFUSED),
            ("alice@corp.example.net", b"Alice <alice@example.com>",
             REFUSED),
            ("bob@corp.example.net", b"bob@corp.example.net", REFUSED)]:
        got, out, _ = run_case(d, smarthost, mail_from, from_header)
        if got != want:
            problems.append(f"MAIL FROM:<{mail_from}> From: {from_header!r}:"
                            f" got {got} ({out!r}), want {want}")
    # bob gets bob@corp.example.net the same way.
    got, out, _ = run_case(d, smarthost, "bob@corp.example.net",
                           b"Bob <bob@corp.example.net>", user="bob")
    if got != OK:
        problems.append(f"bob as bob@corp.example.net: got {got} ({out!r})")
    assert not problems, "\n".join(problems)


def test_pam_address_domain_non_ascii_user(authrelay, smarthost):
    """jörg's address is jörg@example.com (SMTPUTF8, RFC 6531)."""
    d = authrelay(config=policy("both"))
    c = authed_from(d, "127.0.0.1", "jörg")
    mark = marker()
    out = transact(c, "jörg@example.com", mail_params=" SMTPUTF8",
                   data=message("Jörg <jörg@example.com>", mark))
    assert out.code == 250, f"got {out!r}, want 250"
    out = transact(c, "jorg@example.com", data=message(mark=marker()))
    assert out.code == 553, f"got {out!r}, want 553 for jorg@"
    c.quit()
