"""contrib/fail2ban: the filter matches authrelay's auth-failure record,
and nothing else, in every form the record takes (issue 5):

- the stderr line, as the daemon writes it (no date: fail2ban-regex -d
  '{NONE}'), and behind an ISO 8601 date as a log collector adds one;
- the journal entry, read by fail2ban's own systemd backend
  (fail2ban-regex systemd-journal, python3-systemd) from a private
  journald, and as journalctl prints it into a syslog-style file.

The sample lines come from a real daemon run: failed logins from
127.0.0.1, 127.0.0.2 and ::1 (bad password, unknown user, empty
password, a login name that tries to smuggle in another client=), and
the records that must not count (auth-ok, message, sender-refused,
client-blocked, auth-tempfail, connect, tls, disconnect ...). The jail
passes fail2ban-client -t with the filter installed next to Debian's
fail2ban configuration.
"""

import re
import shutil
import subprocess
from collections import Counter
from datetime import datetime, timezone

import pytest

from conftest import SRCDIR, USERS
from harness import SMTPRaw, check, free_port, require
from policy_helpers import (OTHER_IP, audit_records, marker, message,
                            session_from, start_in_journal, transact,
                            wait_record)
from policy_helpers import journal  # noqa: F401 (fixture)

CONTRIB = SRCDIR / "contrib" / "fail2ban"
FILTER = CONTRIB / "filter.d" / "authrelay.conf"
JAIL = CONTRIB / "jail.d" / "authrelay.conf"
SMUGGLER = "x client=6.6.6.6 user=admin"


@pytest.fixture
def f2b(tmp_path):
    """A copy of Debian's /etc/fail2ban with only our jail in jail.d and
    our filter in filter.d, as an administrator would install them."""
    regex = require("fail2ban-regex", "fail2ban-regex (Debian package "
                    "fail2ban)")
    client = require("fail2ban-client", "fail2ban-client (Debian package "
                     "fail2ban)")
    require("/etc/fail2ban/filter.d/common.conf",
            "/etc/fail2ban (Debian package fail2ban)")
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    for f in (conf / "jail.d").iterdir():
        f.unlink()
    shutil.copy(FILTER, conf / "filter.d" / "authrelay.conf")
    shutil.copy(JAIL, conf / "jail.d" / "authrelay.conf")

    class F2B:
        dir = conf

        def regex(self, log, *opts, prefix=()):
            """fail2ban-regex [opts] LOG authrelay -> (ips found, summary
            "Lines:" line, whole output)."""
            args = [*prefix, regex, "-c", str(conf), *opts, str(log),
                    "authrelay"]
            r = subprocess.run(args, capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, \
                f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
            ips = subprocess.run(args[:len(prefix) + 3] + ["-o", "ip"] +
                                 args[len(prefix) + 3:],
                                 capture_output=True, text=True,
                                 timeout=120)
            assert ips.returncode == 0, ips.stderr
            lines = re.search(r"^Lines: .*$", r.stdout, re.M)
            return ([x for x in ips.stdout.split() if x],
                    lines.group(0) if lines else "", r.stdout)

        def client(self, *args):
            return subprocess.run([client, "-c", str(conf), *args],
                                  capture_output=True, text=True,
                                  timeout=60)
    return F2B()


def make_records(d, smarthost, ipv6_port=None):
    """Drive a real daemon through the events the filter must and must
    not count. Returns the clients of the auth-failure records expected
    (from the daemon's own records, not from this list)."""
    # Failures: wrong password (PLAIN and LOGIN), unknown user, empty
    # password, a smuggling login name; from two addresses.
    c = session_from(d, "127.0.0.1")
    check(c.auth_plain("alice", "wrong-1"), 535, "5.7.8")
    check(c.auth_login("alice", "wrong-2"), 535, "5.7.8")
    check(c.auth_plain("nosuchuser", "whatever"), 535, "5.7.8")
    check(c.auth_plain("bob", ""), 535, "5.7.8")
    check(c.auth_plain(SMUGGLER, "whatever"), 535, "5.7.8")
    c.close()
    c = session_from(d, OTHER_IP)
    check(c.auth_plain("carol", "wrong-3"), 535, "5.7.8")
    # ... and then success, a message, a refused sender.
    check(c.auth_plain("carol", USERS["carol"]), 235, "2.7.0")
    out = transact(c, "carol@example.com", data=message(
        b"Carol <carol@example.com>", marker()))
    assert out.code == 250, f"got {out!r}"
    out = transact(c, "bob@example.com")
    assert out.code == 553, f"got {out!r}"
    c.quit()
    if ipv6_port:
        c = SMTPRaw(ipv6_port, host="::1")
        c.ehlo()
        c.starttls(d.tls_context)
        c.ehlo()
        check(c.auth_plain("alice", "wrong-v6"), 535, "5.7.8")
        c.close()
    # client-blocked: 127.0.0.3 reaches max_failures_per_ip (6) at its
    # sixth failure (127.0.0.1 stays below it with five).
    c = session_from(d, "127.0.0.3")
    for i in range(5):
        check(c.auth_plain("bob", f"wrong-b{i}"), 535, "5.7.8")
    check(c.auth_plain("bob", "wrong-b5"), 421, "4.7.0")
    c.close()


def config(**extra):
    conf = {"auth": {"failure_delay": "0", "max_failures_per_ip": 6},
            "policy": {"sender_check": "envelope"}}
    for k, v in extra.items():
        conf.setdefault(k, {}).update(v)
    return conf


def expected_failures(records):
    return Counter(r["client"] for r in records if r.event == "auth-failure")


def test_filter_on_stderr_lines_of_a_real_run(authrelay, smarthost, f2b,
                                              tmp_path):
    p587, p465, v6 = free_port(), free_port(), free_port()
    d = authrelay(config=config(server={"listen": [
        f"127.0.0.1:{p587} starttls", f"127.0.0.1:{p465} tls",
        f"[::1]:{v6} starttls"]}))
    d.starttls_port, d.tls_port = p587, p465
    make_records(d, smarthost, ipv6_port=v6)
    # A worker outage: auth-tempfail, in a second daemon whose PAM
    # service cannot reach its passdb.
    d2 = authrelay(config=config(pam={"service": "authrelay-outage"}))
    c = session_from(d2, "127.0.0.1")
    check(c.auth_plain("alice", USERS["alice"]), 454, "4.7.0")
    c.close()
    wait_record(d2, "auth-tempfail")
    wait_record(d, "disconnect", client="127.0.0.3")
    log = d.log() + d2.log()
    records = audit_records(log)
    want = expected_failures(records)
    assert want["127.0.0.1"] == 5 and want[OTHER_IP] == 1 and \
        want["::1"] == 1 and want["127.0.0.3"] == 6, want
    events = {r.event for r in records}
    assert {"auth-ok", "message", "sender-refused", "client-blocked",
            "auth-tempfail", "connect", "tls", "disconnect"} <= events, \
        events

    raw = tmp_path / "authrelay.log"
    raw.write_text(log)
    ips, lines, out = f2b.regex(raw, "-d", "{NONE}")
    assert Counter(ips) == want, \
        f"fail2ban found {Counter(ips)}, want {want}\n{out}"
    assert "6.6.6.6" not in ips

    # Only auth-failure lines match: the others alone match nothing.
    others = tmp_path / "others.log"
    others.write_text("".join(r.line + "\n" for r in records
                              if r.event != "auth-failure"))
    ips, lines, out = f2b.regex(others, "-d", "{NONE}")
    assert ips == [], f"matched lines that are not auth-failure:\n{out}"
    assert re.search(r" 0 matched", lines), lines

    # Behind a date, as a log collector writes the lines to a file.
    dated = tmp_path / "dated.log"
    now = datetime.now(timezone.utc).astimezone()
    dated.write_text("".join(
        f"{now.isoformat(timespec='microseconds')} {line}\n"
        for line in log.splitlines()))
    ips, lines, out = f2b.regex(dated)
    assert Counter(ips) == want, \
        f"dated lines: fail2ban found {Counter(ips)}, want {want}\n{out}"


def test_filter_on_the_journal(journal, authrelay, smarthost, f2b,
                               tmp_path):
    """The journal form: fail2ban's systemd backend reads journald's
    entries itself (with the filter's journalmatch), and a syslog-style
    file of them (journalctl -o short-iso) matches the same."""
    require("/usr/lib/python3/dist-packages/systemd/journal.py",
            "python3-systemd (fail2ban's systemd backend)")
    d = start_in_journal(authrelay, journal, config=config())
    make_records(d, smarthost)
    journal.wait_entry(AUTHRELAY_EVENT="client-blocked")
    entries = journal.entries("SYSLOG_IDENTIFIER=authrelay")
    want = Counter(e["AUTHRELAY_CLIENT"] for e in entries
                   if e.get("AUTHRELAY_EVENT") == "auth-failure")
    assert want["127.0.0.1"] == 5 and want["127.0.0.3"] == 6, want

    # fail2ban-regex's systemd backend, run inside journald's namespace.
    ips, lines, out = f2b.regex(
        "systemd-journal", prefix=(journal.nsenter, f"--mount={journal.ns}",
                                   "--"))
    assert Counter(ips) == want, \
        f"systemd backend: fail2ban found {Counter(ips)}, want {want}\n{out}"

    # The same entries as a syslog file.
    text = journal.run("-o", "short-iso", "SYSLOG_IDENTIFIER=authrelay")
    syslog = tmp_path / "syslog"
    syslog.write_bytes(text)
    ips, lines, out = f2b.regex(syslog)
    assert Counter(ips) == want, \
        f"syslog file: fail2ban found {Counter(ips)}, want {want}\n{out}"
    assert "6.6.6.6" not in ips


def test_jail_passes_fail2ban_client_test(f2b):
    r = f2b.client("-t")
    assert r.returncode == 0 and "OK" in r.stdout + r.stderr, \
        f"fail2ban-client -t:\n{r.stdout}\n{r.stderr}"
    r = f2b.client("-d")
    assert r.returncode == 0, r.stderr
    dump = r.stdout
    assert "['add', 'authrelay', 'systemd']" in dump, dump
    assert "'addjournalmatch', 'SYSLOG_IDENTIFIER=authrelay', " \
        "'AUTHRELAY_EVENT=auth-failure'" in dump, dump
