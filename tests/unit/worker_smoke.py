#!/usr/bin/env python3
"""The auth worker, authrelay-auth, driven directly.

Plays the daemon: a SOCK_SEQPACKET socketpair, the worker spawned with
its end as fd 3, requests encoded per common/auth_proto.h, replies
checked. PAM through pam_wrapper (pam_matrix, and a probe module built
here that records what the worker tells PAM and drives the conversation
into its corners), NSS through nss_wrapper.

    worker_smoke.py [PATH/TO/authrelay-auth]

make check runs it (tests/unit/Makefile.am) with the worker of the build
tree in $AUTHRELAY_AUTH_WORKER.

Exit 0 all passed, 1 a failure, 77 skipped (pam_wrapper missing; under
CI=true a missing component is a failure). Not the integration tests:
those drive the real daemon.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PAM_WRAPPER = LIBDIR + "/libpam_wrapper.so"
NSS_WRAPPER = LIBDIR + "/libnss_wrapper.so"
PAM_MATRIX = LIBDIR + "/pam_wrapper/pam_matrix.so"

OK, PERMFAIL, TEMPFAIL = 0, 1, 2
RESULT_NAMES = {OK: "OK", PERMFAIL: "PERMFAIL", TEMPFAIL: "TEMPFAIL"}
T_USER, T_PASSWORD, T_CLIENT_IP = 1, 2, 3
T_RESULT, T_REASON, T_ADDRESS = 4, 5, 6

PROBE_C = r"""
/* Test PAM module: records what the application gave PAM, drives the
 * conversation into its corners, returns the code it is told to. */
#include <security/pam_appl.h>
#include <security/pam_modules.h>
#include <security/pam_ext.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C(x) { #x, x }
static const struct { const char *name; int code; } codes[] = {
	C(PAM_SUCCESS), C(PAM_OPEN_ERR), C(PAM_SYMBOL_ERR),
	C(PAM_SERVICE_ERR), C(PAM_SYSTEM_ERR), C(PAM_BUF_ERR),
	C(PAM_PERM_DENIED), C(PAM_AUTH_ERR), C(PAM_CRED_INSUFFICIENT),
	C(PAM_AUTHINFO_UNAVAIL), C(PAM_USER_UNKNOWN), C(PAM_MAXTRIES),
	C(PAM_NEW_AUTHTOK_REQD), C(PAM_ACCT_EXPIRED), C(PAM_SESSION_ERR),
	C(PAM_CRED_UNAVAIL), C(PAM_CRED_EXPIRED), C(PAM_CRED_ERR),
	C(PAM_CONV_ERR), C(PAM_AUTHTOK_ERR), C(PAM_AUTHTOK_EXPIRED),
	C(PAM_TRY_AGAIN), C(PAM_ABORT), C(PAM_MODULE_UNKNOWN),
	C(PAM_BAD_ITEM), C(PAM_INCOMPLETE),
};

static const char *out_path;

static void record(const char *fmt, ...)
{
	va_list ap;
	FILE *f;

	if (out_path == NULL || (f = fopen(out_path, "a")) == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

static void drop(struct pam_response *resp, int n)
{
	if (resp == NULL)
		return;
	for (int i = 0; i < n; i++) {
		if (resp[i].resp != NULL) {
			memset(resp[i].resp, 0, strlen(resp[i].resp));
			free(resp[i].resp);
		}
	}
	free(resp);
}

static int ask(pam_handle_t *pamh, int n, const int *styles,
	       struct pam_response **resp)
{
	const struct pam_conv *pc = NULL;
	struct pam_message m[40];
	const struct pam_message *mp[40];

	if (pam_get_item(pamh, PAM_CONV, (const void **)&pc) != PAM_SUCCESS)
		return -1;
	for (int i = 0; i < n; i++) {
		m[i].msg_style = styles[i];
		m[i].msg = "probe says";
		mp[i] = &m[i];
	}
	*resp = NULL;
	return pc->conv(n, mp, resp, pc->appdata_ptr);
}

static int same(const struct pam_response *r, const char *want)
{
	return r->resp != NULL && strcmp(r->resp, want) == 0;
}

/* Returns 1 when the application behaved. */
static int conv_mode(pam_handle_t *pamh, const char *mode, const char *user,
		     const char *expect)
{
	struct pam_response *resp = NULL;
	int styles[40], ok = 0, n = 1, ret;

	for (int i = 0; i < 40; i++)
		styles[i] = PAM_PROMPT_ECHO_OFF;
	if (strcmp(mode, "echo_on") == 0) {
		styles[0] = PAM_PROMPT_ECHO_ON;
		ret = ask(pamh, 1, styles, &resp);
		ok = ret == PAM_SUCCESS && resp != NULL && same(&resp[0], user);
	} else if (strcmp(mode, "echo_off") == 0) {
		ret = ask(pamh, 1, styles, &resp);
		ok = ret == PAM_SUCCESS && resp != NULL &&
		     same(&resp[0], expect);
	} else if (strcmp(mode, "info") == 0) {
		styles[0] = PAM_TEXT_INFO;
		styles[1] = PAM_ERROR_MSG;
		n = 3;
		ret = ask(pamh, n, styles, &resp);
		ok = ret == PAM_SUCCESS && resp != NULL &&
		     resp[0].resp == NULL && resp[1].resp == NULL &&
		     same(&resp[2], expect);
	} else if (strcmp(mode, "n0") == 0) {
		ret = ask(pamh, 0, styles, &resp);
		ok = ret == PAM_CONV_ERR && resp == NULL;
	} else if (strcmp(mode, "n33") == 0) {
		n = 33;
		ret = ask(pamh, n, styles, &resp);
		ok = ret == PAM_CONV_ERR && resp == NULL;
	} else if (strcmp(mode, "n32") == 0) {
		n = 32;
		ret = ask(pamh, n, styles, &resp);
		ok = ret == PAM_SUCCESS && resp != NULL;
		for (int i = 0; ok && i < n; i++)
			ok = same(&resp[i], expect);
	} else if (strcmp(mode, "style99") == 0) {
		styles[1] = 99;
		n = 2;
		ret = ask(pamh, n, styles, &resp);
		ok = ret == PAM_CONV_ERR && resp == NULL;
	} else if (strcmp(mode, "binary") == 0) {
		styles[0] = 7;	/* PAM_BINARY_PROMPT */
		ret = ask(pamh, 1, styles, &resp);
		ok = ret == PAM_CONV_ERR && resp == NULL;
	}
	drop(resp, n);
	return ok;
}

static int probe(pam_handle_t *pamh, int flags, int argc, const char **argv,
		 const char *step)
{
	const char *expect = "", *user = NULL, *rhost = NULL;
	int ret = PAM_SUCCESS;

	for (int i = 0; i < argc; i++)
		if (strncmp(argv[i], "out=", 4) == 0)
			out_path = argv[i] + 4;
		else if (strncmp(argv[i], "expect=", 7) == 0)
			expect = argv[i] + 7;
	pam_get_item(pamh, PAM_USER, (const void **)&user);
	record("%s_user=%s", step, user ? user : "(null)");
	record("%s_flags=%d", step, flags);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "rhost") == 0) {
			pam_get_item(pamh, PAM_RHOST, (const void **)&rhost);
			record("rhost=%s", rhost ? rhost : "(null)");
		} else if (strncmp(a, "conv=", 5) == 0) {
			record("conv_%s=%s", a + 5,
			       conv_mode(pamh, a + 5, user ? user : "",
					 expect) ? "ok" : "bad");
		} else if (strncmp(a, "setuser=", 8) == 0) {
			pam_set_item(pamh, PAM_USER, a + 8);
		} else if (strncmp(a, "delay=", 6) == 0) {
			pam_fail_delay(pamh, (unsigned)atoi(a + 6));
		} else if (strncmp(a, "ret=", 4) == 0) {
			ret = -1;
			for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]);
			     k++)
				if (strcmp(codes[k].name, a + 4) == 0)
					ret = codes[k].code;
			if (ret < 0) {
				record("unknown code %s", a + 4);
				ret = PAM_SERVICE_ERR;
			}
		}
	}
	return ret;
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc,
				   const char **argv)
{
	return probe(pamh, flags, argc, argv, "auth");
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc,
				const char **argv)
{
	return probe(pamh, flags, argc, argv, "acct");
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc,
			      const char **argv)
{
	return PAM_SUCCESS;
}
"""


def field(tag, data):
    return struct.pack(">BH", tag, len(data)) + data


def request(rid, user, password, ip="192.0.2.1"):
    enc = lambda s: s if isinstance(s, bytes) else s.encode()
    return (struct.pack(">BBI", 1, 1, rid) + field(T_USER, enc(user)) +
            field(T_PASSWORD, enc(password)) + field(T_CLIENT_IP, enc(ip)))


def parse_reply(buf):
    """A reply as a dict; raises ValueError on anything malformed."""
    if len(buf) < 6:
        raise ValueError("reply of %d octets" % len(buf))
    version, mtype, rid = struct.unpack(">BBI", buf[:6])
    if version != 1 or mtype != 2:
        raise ValueError("version %d type %d" % (version, mtype))
    rep = {"id": rid, "result": None, "user": None, "reason": None,
           "addresses": []}
    pos = 6
    while pos < len(buf):
        if len(buf) - pos < 3:
            raise ValueError("field header cut short")
        tag, flen = struct.unpack(">BH", buf[pos:pos + 3])
        data = buf[pos + 3:pos + 3 + flen]
        if len(data) != flen:
            raise ValueError("length past end")
        pos += 3 + flen
        if tag == T_RESULT and rep["result"] is None and flen == 1:
            rep["result"] = data[0]
        elif tag == T_USER and rep["user"] is None:
            rep["user"] = data.decode()
        elif tag == T_REASON and rep["reason"] is None:
            rep["reason"] = data.decode()
        elif tag == T_ADDRESS:
            rep["addresses"].append(data.decode())
        else:
            raise ValueError("bad field tag %d" % tag)
    if rep["result"] is None:
        raise ValueError("no result")
    return rep


class Failures:
    def __init__(self):
        self.n = 0
        self.checks = 0

    def check(self, cond, what):
        self.checks += 1
        if not cond:
            self.n += 1
            print("FAIL: " + what)


T = Failures()


class Env:
    """A temporary directory with the config, PAM services, NSS files."""

    def __init__(self, worker):
        self.worker = worker
        self.dir = tempfile.mkdtemp(prefix="authrelay-worker-")
        self.services = os.path.join(self.dir, "pam.d")
        os.mkdir(self.services)
        self.out = os.path.join(self.dir, "probe.out")
        self.log = os.path.join(self.dir, "worker.log")
        self.probe = os.path.join(self.dir, "pam_probe.so")
        self.lsan_supp = self.write("lsan.supp", "leak:libpam.so\n")
        src = os.path.join(self.dir, "pam_probe.c")
        with open(src, "w") as f:
            f.write(PROBE_C)
        subprocess.run(["gcc", "-shared", "-fPIC", "-Wall", "-o",
                        self.probe, src, "-lpam"], check=True)
        groups = ["alice:x:1001:", "bob:x:1002:", "carol:x:1003:",
                  "mail-senders:x:2000:alice,zed"]
        groups += ["g%d:x:%d:erin" % (i, 3000 + i) for i in range(1, 101)]
        self.write("group", "\n".join(groups) + "\n")
        self.write("passwd",
                   "alice:x:1001:1001::/home/alice:/bin/false\n"
                   "bob:x:1002:1002::/home/bob:/bin/false\n"
                   "dave:x:1004:2000::/home/dave:/bin/false\n"
                   "erin:x:1005:1002::/home/erin:/bin/false\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def service(self, name, lines):
        with open(os.path.join(self.services, name), "w") as f:
            f.write("\n".join(lines) + "\n")

    def config(self, name, auth="", pam="", extra=""):
        return self.write(name, textwrap.dedent("""\
            [server]
            hostname = mail.example.com
            [tls]
            cert = /nonexistent/fullchain.pem
            key = /nonexistent/privkey.pem
            [relay]
            smarthost = 127.0.0.1:25
            [auth]
            """) + auth + "\n[pam]\n" + pam + "\n" + extra)

    def environ(self, nss=False):
        preload = PAM_WRAPPER + (" " + NSS_WRAPPER if nss else "")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LD_PRELOAD": preload,
            "PAM_WRAPPER": "1",
            "PAM_WRAPPER_SERVICE_DIR": self.services,
            # RTLD_DEEPBIND breaks ASan; pam_wrapper 1.1.4 reads the
            # variable under uid_wrapper's name.
            "UID_WRAPPER_DISABLE_DEEPBIND": "1",
            "PAM_WRAPPER_DISABLE_DEEPBIND": "1",
            "NSS_WRAPPER_DISABLE_DEEPBIND": "1",
            # ASan wants to come first in the link order; pam_wrapper
            # is preloaded ahead of it. A leak fails the exit status.
            "ASAN_OPTIONS": "verify_asan_link_order=0:detect_leaks=1:"
                            "exitcode=99",
            # libpam's pam_start leaks its handle when the service
            # cannot be loaded; not the worker's.
            "LSAN_OPTIONS": "suppressions=" + self.lsan_supp,
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:"
                             "exitcode=99",
        }
        if nss:
            env["NSS_WRAPPER_PASSWD"] = self.path("passwd")
            env["NSS_WRAPPER_GROUP"] = self.path("group")
        return env

    def probe_out(self):
        try:
            with open(self.out) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return {}
        finally:
            if os.path.exists(self.out):
                os.unlink(self.out)
        return dict(l.split("=", 1) for l in lines if "=" in l)


class Worker:
    def __init__(self, env, conf, nss=False, fd3="seqpacket", args=None,
                 sigmask=()):
        self.sock = None
        child = None
        actions = [(os.POSIX_SPAWN_OPEN, 2, env.log,
                    os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)]
        if fd3 in ("seqpacket", "stream"):
            kind = (socket.SOCK_SEQPACKET if fd3 == "seqpacket"
                    else socket.SOCK_STREAM)
            self.sock, child = socket.socketpair(socket.AF_UNIX, kind)
            self.sock.settimeout(15)
            cfd = child.fileno()
            if cfd == 3:
                cfd = os.dup(cfd)
            actions.append((os.POSIX_SPAWN_DUP2, cfd, 3))
        elif fd3 == "pipe":
            r, w = os.pipe()
            actions.append((os.POSIX_SPAWN_DUP2, r if r != 3 else w, 3))
        else:
            actions.append((os.POSIX_SPAWN_CLOSE, 3))
        argv = [env.worker] + (args if args is not None else ["-c", conf])
        self.pid = os.posix_spawn(env.worker, argv,
                                  env.environ(nss=nss),
                                  file_actions=actions,
                                  setsigmask=sigmask)
        if child is not None:
            child.close()
        if fd3 == "pipe":
            os.close(r)
            os.close(w)
        self.status = None

    def send(self, payload):
        self.sock.send(payload)

    def ask(self, payload):
        self.sock.send(payload)
        return self.sock.recv(65536)

    def wait(self, timeout=15):
        """Exit status, or -signal."""
        end = time.time() + timeout
        while time.time() < end:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = (os.WEXITSTATUS(st) if os.WIFEXITED(st)
                               else -os.WTERMSIG(st))
                return self.status
            time.sleep(0.02)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.status = "timeout"
        return self.status

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def drop_pam_wrapper_dir(pid):
    """pam_wrapper 1.1.4 keeps its copy of the services in /tmp/pam.X
    (PAM_WRAPPER_RUNTIME_DIR is not read yet) and removes it at exit,
    not when the process is killed: remove the one of that pid."""
    for name in os.listdir("/tmp"):
        d = os.path.join("/tmp", name)
        if not name.startswith("pam.") or not os.path.isdir(d):
            continue
        try:
            with open(os.path.join(d, "pid")) as f:
                if f.read().strip() == str(pid):
                    shutil.rmtree(d)
        except OSError:
            pass


def expect_reply(w, rid, user, password, result, what, reason=None,
                 canonical=None, addresses=None, ip="192.0.2.1"):
    try:
        raw = w.ask(request(rid, user, password, ip))
        rep = parse_reply(raw)
    except (OSError, ValueError) as e:
        T.check(False, "%s: no valid reply: %s" % (what, e))
        return None
    T.check(rep["id"] == rid, "%s: id got %d, want %d" % (what, rep["id"],
                                                         rid))
    T.check(rep["result"] == result, "%s: result got %s (%s), want %s" % (
        what, RESULT_NAMES.get(rep["result"], rep["result"]), rep["reason"],
        RESULT_NAMES[result]))
    if reason is not None:
        T.check(rep["reason"] == reason, "%s: reason got %r, want %r" % (
            what, rep["reason"], reason))
    if result == OK:
        want = canonical if canonical is not None else user
        T.check(rep["user"] == want, "%s: user got %r, want %r" % (
            what, rep["user"], want))
    else:
        T.check(rep["user"] is None, "%s: user %r in a refusal" % (
            what, rep["user"]))
    if addresses is not None:
        T.check(rep["addresses"] == addresses, "%s: addresses got %r, "
                "want %r" % (what, rep["addresses"], addresses))
    return rep


def finish(w, want_status, what):
    w.close()
    st = w.wait()
    T.check(st == want_status, "%s: exit got %s, want %s" % (what, st,
                                                            want_status))


USERS = [("alice", "secret"), ("bob", "hunter2"), ("carol", "carolpw"),
         ("dave", "davepw"), ("erin", "erinpw")]


def matrix_service(env, name="authrelay", account_users=None,
                   probe_args="rhost"):
    """pam_matrix for auth and account; its passdb lines name the
    service, and only account_users (default: all) pass the account
    step."""
    def passdb(fname, users):
        return env.write(fname, "".join("%s:%s:%s\n" % (u, p, name)
                                        for u, p in users))
    auth_db = passdb("passdb-" + name, USERS)
    acct_db = passdb("passdb-acct-" + name,
                     [(u, p) for u, p in USERS
                      if account_users is None or u in account_users])
    env.service(name, [
        "auth required %s out=%s %s" % (env.probe, env.out, probe_args),
        "auth required %s passdb=%s" % (PAM_MATRIX, auth_db),
        "account required %s passdb=%s" % (PAM_MATRIX, acct_db),
        "account required %s out=%s" % (env.probe, env.out),
    ])


def test_basic(env):
    matrix_service(env)
    conf = env.config("basic.conf", pam="service = authrelay\n"
                      "address_domain = example.com\n")
    w = Worker(env, conf)
    expect_reply(w, 0xdeadbeef, "alice", "secret", OK, "good password",
                 addresses=["alice@example.com"])
    out = env.probe_out()
    T.check(out.get("rhost") == "192.0.2.1",
            "PAM_RHOST got %r" % out.get("rhost"))
    T.check(out.get("auth_flags") == "1",
            "pam_authenticate flags got %r, want PAM_DISALLOW_NULL_AUTHTOK"
            % out.get("auth_flags"))
    T.check(out.get("acct_user") == "alice",
            "pam_acct_mgmt not called after pam_authenticate (%r)" % out)
    expect_reply(w, 0, "alice", "wrong", PERMFAIL, "bad password",
                 reason="Authentication failure")
    T.check("acct_user" not in env.probe_out(),
            "pam_acct_mgmt called after a failed pam_authenticate")
    expect_reply(w, 0xffffffff, "nobody", "whatever", PERMFAIL,
                 "unknown user")
    env.probe_out()
    expect_reply(w, 7, "alice", "", PERMFAIL, "empty password",
                 reason="empty password")
    T.check(env.probe_out() == {}, "PAM called for an empty password")
    expect_reply(w, 8, "", "secret", PERMFAIL, "empty user")
    expect_reply(w, 11, "alice\r\nX-Authenticated-User: ceo", "secret",
                 PERMFAIL, "CR LF in the user name",
                 reason="control character in the user name")
    expect_reply(w, 12, "alice\x7f", "secret", PERMFAIL, "DEL in the name")
    T.check(env.probe_out() == {}, "PAM called for a name with controls")
    expect_reply(w, 9, "alice", "secret", OK, "IPv6 client, empty address",
                 ip="2001:db8::25", addresses=["alice@example.com"])
    T.check(env.probe_out().get("rhost") == "2001:db8::25", "IPv6 rhost")
    expect_reply(w, 10, "alice", "secret", OK, "no client ip", ip="")
    T.check(env.probe_out().get("rhost") == "(null)",
            "empty client ip should leave PAM_RHOST unset")
    finish(w, 0, "EOF after requests")

    # Account refused (not in the account passdb): a valid password is
    # not enough.
    matrix_service(env, name="acct", account_users=["alice"])
    conf = env.config("acct.conf", pam="service = acct\n")
    w = Worker(env, conf)
    expect_reply(w, 1, "bob", "hunter2", PERMFAIL, "account refused")
    expect_reply(w, 2, "alice", "secret", OK, "account allowed",
                 addresses=[])
    finish(w, 0, "acct worker")
    env.probe_out()

    with open(env.log) as f:
        log = f.read()
    for secret in ("secret", "hunter2", "wrong", "whatever"):
        T.check(secret not in log, "password %r in the log" % secret)


def test_codes(env):
    """PAM results: auth step and account step."""
    cases = [
        ("PAM_SUCCESS", OK), ("PAM_AUTH_ERR", PERMFAIL),
        ("PAM_USER_UNKNOWN", PERMFAIL), ("PAM_PERM_DENIED", PERMFAIL),
        ("PAM_ACCT_EXPIRED", PERMFAIL), ("PAM_NEW_AUTHTOK_REQD", PERMFAIL),
        ("PAM_AUTHTOK_EXPIRED", PERMFAIL), ("PAM_MAXTRIES", PERMFAIL),
        ("PAM_CRED_INSUFFICIENT", PERMFAIL),
        ("PAM_AUTHINFO_UNAVAIL", TEMPFAIL), ("PAM_SYSTEM_ERR", TEMPFAIL),
        ("PAM_BUF_ERR", TEMPFAIL), ("PAM_CONV_ERR", TEMPFAIL),
        ("PAM_ABORT", TEMPFAIL), ("PAM_TRY_AGAIN", TEMPFAIL),
        ("PAM_SERVICE_ERR", TEMPFAIL), ("PAM_CRED_ERR", TEMPFAIL),
    ]
    rid = 100
    for step in ("auth", "account"):
        for code, result in cases:
            # Linux-PAM lowercases the service name.
            name = ("code-%s-%s" % (step, code)).lower()
            other = "account" if step == "auth" else "auth"
            env.service(name, [
                "%s required %s out=%s ret=%s" % (step, env.probe, env.out,
                                                  code),
                "%s required %s out=%s" % (other, env.probe, env.out),
            ])
            conf = env.config(name + ".conf", pam="service = %s\n" % name)
            w = Worker(env, conf)
            rid += 1
            expect_reply(w, rid, "alice", "pw", result,
                         "%s returns %s" % (step, code))
            finish(w, 0, name)
            env.probe_out()

    # A missing service file is an outage, not a bad password.
    conf = env.config("noservice.conf", pam="service = no-such-service\n")
    w = Worker(env, conf)
    expect_reply(w, 1, "alice", "pw", TEMPFAIL, "missing PAM service")
    finish(w, 0, "missing service")


def test_conversation(env):
    for mode in ("echo_on", "echo_off", "info", "n0", "n33", "n32",
                 "style99", "binary"):
        name = "conv-" + mode
        env.service(name, [
            "auth required %s out=%s conv=%s expect=pass%%word" % (
                env.probe, env.out, mode),
            "account required %s" % env.probe,
        ])
        conf = env.config(name + ".conf", pam="service = %s\n" % name)
        w = Worker(env, conf)
        expect_reply(w, 5, "alice", "pass%word", OK, "conversation " + mode)
        out = env.probe_out()
        T.check(out.get("conv_" + mode) == "ok",
                "conversation %s: got %r" % (mode, out.get("conv_" + mode)))
        finish(w, 0, name)


def test_canonical_and_delay(env):
    env.service("canon", [
        "auth required %s out=%s setuser=Alice.Smith" % (env.probe, env.out),
        "account required %s out=%s" % (env.probe, env.out),
    ])
    conf = env.config("canon.conf", pam="service = canon\n"
                      "address_domain = corp.example\n")
    w = Worker(env, conf)
    expect_reply(w, 1, "asmith", "pw", OK, "PAM_USER read back",
                 canonical="Alice.Smith",
                 addresses=["Alice.Smith@corp.example"])
    finish(w, 0, "canon")
    env.probe_out()

    # A module handing back a name with a control character: never an
    # identity.
    env.service("canon-bad", [
        "auth required %s setuser=alice\x01x" % env.probe,
        "account required %s" % env.probe,
    ])
    conf = env.config("canon-bad.conf", pam="service = canon-bad\n")
    w = Worker(env, conf)
    expect_reply(w, 1, "alice", "pw", TEMPFAIL, "PAM_USER not printable",
                 reason="bad PAM_USER")
    finish(w, 0, "canon-bad")

    # pam_fail_delay(3 s): the worker must not sleep it.
    env.service("delay", [
        "auth required %s delay=3000000 ret=PAM_AUTH_ERR" % env.probe,
        "account required %s" % env.probe,
    ])
    conf = env.config("delay.conf", pam="service = delay\n")
    w = Worker(env, conf)
    t0 = time.time()
    expect_reply(w, 1, "alice", "pw", PERMFAIL, "failure with a delay")
    took = time.time() - t0
    T.check(took < 1.5, "PAM's failure delay not overridden: %.1f s" % took)
    finish(w, 0, "delay")


def test_groups(env):
    matrix_service(env, name="groups", probe_args="")
    conf = env.config("groups.conf",
                      auth="require_group = ghost-group\n"
                           "require_group = mail-senders\n"
                           "require_group = g100\n",
                      pam="service = groups\naddress_domain = example.com\n")
    w = Worker(env, conf, nss=True)
    expect_reply(w, 1, "alice", "secret", OK, "member (supplementary)",
                 addresses=["alice@example.com"])
    expect_reply(w, 2, "bob", "hunter2", PERMFAIL, "not a member",
                 reason="not in a required group")
    expect_reply(w, 3, "dave", "davepw", OK, "member (primary group)")
    expect_reply(w, 4, "carol", "carolpw", PERMFAIL, "not in NSS",
                 reason="user not found via NSS")
    expect_reply(w, 5, "erin", "erinpw", OK, "member of 100+ groups")
    expect_reply(w, 6, "alice", "bad", PERMFAIL, "member, bad password",
                 reason="Authentication failure")
    finish(w, 0, "groups")
    env.probe_out()


def test_service_file(env):
    """pam/authrelay.pam with Debian's common-auth and common-account:
    it parses, and an unknown user is a 535, not a 454."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "..", "..", "pam", "authrelay.pam")
    for need in (src, "/etc/pam.d/common-auth", "/etc/pam.d/common-account"):
        if not os.path.exists(need):
            print("test_service_file: skipped, %s missing" % need)
            return
    for name, path in (("authrelay-file", src),
                       ("common-auth", "/etc/pam.d/common-auth"),
                       ("common-account", "/etc/pam.d/common-account")):
        with open(path) as f:
            env.service(name, f.read().splitlines())
    conf = env.config("file.conf", pam="service = authrelay-file\n")
    w = Worker(env, conf)
    expect_reply(w, 1, "no-such-user-zq9", "Zq9-file-pw", PERMFAIL,
                 "authrelay.pam, unknown user")
    finish(w, 0, "authrelay.pam")


LIFE_PW = "Zq9-life-pw"


def test_lifecycle(env):
    env.service("life", ["auth required %s" % env.probe,
                         "account required %s" % env.probe])
    conf = env.config("life.conf", auth="worker_max_requests = 3\n",
                      pam="service = life\n")
    w = Worker(env, conf)
    for i in range(3):
        expect_reply(w, i, "alice", LIFE_PW, OK, "request %d of 3" % i)
    try:
        eof = w.sock.recv(100) == b""
    except OSError:
        eof = True
    T.check(eof, "worker still there after worker_max_requests")
    finish(w, 0, "recycled after worker_max_requests")

    for what, payload in [
            ("garbage", b"\x01\x01garbage"),
            ("reply type", b"\x01\x02\x00\x00\x00\x01" + field(T_RESULT,
                                                            b"\x00")),
            ("missing password", struct.pack(">BBI", 1, 1, 1) +
             field(T_USER, b"alice") + field(T_CLIENT_IP, b"::1")),
            ("truncated", request(1, "alice", LIFE_PW)[:-1]),
            ("over AUTH_PROTO_MAX", request(1, "alice", LIFE_PW) +
             b"\x00" * 20000)]:
        w = Worker(env, conf)
        expect_reply(w, 1, "alice", LIFE_PW, OK, "before " + what)
        w.send(payload)
        try:
            data = w.sock.recv(100)
        except OSError:
            data = b""
        T.check(data == b"", "%s: got a reply %r" % (what, data))
        finish(w, 1, "invalid request: " + what)
        with open(env.log) as f:
            T.check(LIFE_PW not in f.read(),
                    "password in the log (%s)" % what)

    # A blocked SIGTERM (inherited from an sd-event daemon) is unblocked.
    w = Worker(env, conf, sigmask={signal.SIGTERM})
    expect_reply(w, 1, "alice", LIFE_PW, OK, "with SIGTERM blocked")
    os.kill(w.pid, signal.SIGTERM)
    st = w.wait()
    T.check(st == -signal.SIGTERM, "SIGTERM: got %s" % st)
    w.close()
    drop_pam_wrapper_dir(w.pid)

    # The LDAP backend with its directory unreachable: an honest 454
    # (TEMPFAIL), never a 535. The port is bound but not listening, so
    # the connection is refused at once.
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    conf = env.config("ldap.conf", auth="backend = ldap\n",
                      extra="[ldap]\nuri = ldap://127.0.0.1:%d\n"
                            "base = dc=example,dc=com\n"
                            % closed.getsockname()[1])
    w = Worker(env, conf)
    rep = expect_reply(w, 1, "alice", "secret", TEMPFAIL,
                       "ldap backend, directory unreachable")
    if rep is not None:
        T.check(rep["reason"].startswith("no ldap server available"),
                "ldap backend, directory unreachable: reason got %r, "
                "want 'no ldap server available: ...'" % rep["reason"])
    finish(w, 0, "ldap")
    closed.close()

    # Start-up refusals.
    conf = env.config("life.conf", pam="service = life\n")
    for fd3 in ("stream", "pipe", "closed"):
        w = Worker(env, conf, fd3=fd3)
        finish(w, 1, "fd 3 " + fd3)
    finish(Worker(env, conf, args=[]), 1, "no -c")
    finish(Worker(env, conf, args=["-c", conf, "extra"]), 1, "extra arg")
    bad = env.write("bad.conf", "[auth]\nbackend = carrier-pigeon\n")
    finish(Worker(env, bad), 1, "invalid config")
    finish(Worker(env, env.path("missing.conf")), 1, "missing config")


def main():
    worker = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                             os.environ.get("AUTHRELAY_AUTH_WORKER",
                                            "pam/authrelay-auth"))
    ci = os.environ.get("CI") == "true"
    for need in (worker, PAM_WRAPPER, NSS_WRAPPER, PAM_MATRIX):
        if not os.path.exists(need):
            print("%s: %s missing" % ("FAIL" if ci else "SKIP", need))
            return 1 if ci else 77
    env = Env(worker)
    for test in (test_basic, test_codes, test_conversation,
                 test_canonical_and_delay, test_groups, test_lifecycle,
                 test_service_file):
        before = T.n
        test(env)
        print("%s: %s" % (test.__name__, "ok" if T.n == before else
                          "%d failed" % (T.n - before)))
    if T.n == 0:
        shutil.rmtree(env.dir)
        print("worker_smoke: %d checks, 0 failed" % T.checks)
        return 0
    print("worker_smoke: %d checks, %d failed (worker log: %s)" % (
        T.checks, T.n, env.log))
    return 1


if __name__ == "__main__":
    sys.exit(main())
