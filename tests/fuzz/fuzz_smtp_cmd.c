/* smtp_cmd: one command line, then the arguments of MAIL and RCPT.
 *
 * Invariants beyond the sanitizers:
 * - a line with a NUL or a control character other than HT is refused;
 * - a parsed path, ENVID, ORCPT or NOTIFY holds no control character and
 *   fits its RFC 5321 §4.5.3.1 limit; without SMTPUTF8 the sender path is
 *   ASCII;
 * - a refusal comes with a 5xx code, an enhanced code and a text;
 * - parsing is deterministic (the same line twice gives the same);
 * - the command an audit record names (audit_cmd_text) is bounded, has
 *   no control octet but HT, and for AUTH is at most "AUTH MECHANISM". */
#include "autoconf.h"

#include <string.h>

#include "audit_cmd.h"
#include "fuzz.h"
#include "smtp_cmd.h"

static void check_err(int r, const struct smtp_arg_error *err)
{
	if (r == 0)
		return;
	FUZZ_CHECK(err->code >= 500 && err->code <= 599 && err->enhanced &&
		   err->enhanced[0] == '5' && err->text && err->text[0],
		   "refusal without a 5xx reply (code %d)", err->code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[1024];
	struct smtp_cmd cmd, again;
	struct smtp_mail_args mail;
	struct smtp_rcpt_args rcpt;
	struct smtp_arg_error err;
	int r;

	if (size >= sizeof(line))
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	{
		char shown[64];
		size_t n = audit_cmd_text(line, size, shown, sizeof(shown));

		FUZZ_CHECK(n < sizeof(shown) && strlen(shown) == n,
			   "audit_cmd_text: %zu octets", n);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(shown[i] == '\t' ||
				   !fuzz_has_control(shown + i, 1),
				   "audit_cmd_text: control octet");
		/* RFC 4422 §3.1: a mechanism name is at most 20 octets. */
		if (strncmp(shown, "AUTH", 4) == 0)
			FUZZ_CHECK(n == 4 || (n <= 25 && shown[4] == ' ' &&
					      strchr(shown + 5, ' ') == NULL),
				   "AUTH data in the audit record: \"%s\"",
				   shown);
	}
	r = smtp_cmd_parse(line, size, &cmd);
	FUZZ_CHECK(r == (smtp_cmd_parse(line, size, &again)) &&
		   (r < 0 || (cmd.verb == again.verb && cmd.args == again.args)),
		   "smtp_cmd_parse not deterministic");
	if (r < 0) {
		return 0;
	}
	for (size_t i = 0; i < size; i++)
		FUZZ_CHECK(line[i] == '\t' || !fuzz_has_control(line + i, 1),
			   "line with control octet 0x%02x accepted",
			   (unsigned char)line[i]);
	FUZZ_CHECK(cmd.args[0] == '\0' ||
		   (cmd.args > line && cmd.args < line + size),
		   "args outside the line");

	memset(&err, 0, sizeof(err));
	r = smtp_parse_mail(cmd.args, &mail, &err);
	check_err(r, &err);
	if (r == 0) {
		size_t n = strlen(mail.path);

		FUZZ_CHECK(n <= SMTP_PATH_MAX, "MAIL path of %zu octets", n);
		FUZZ_CHECK(!fuzz_has_control(mail.path, n),
			   "MAIL path with a control octet");
		FUZZ_CHECK(!fuzz_has_control(mail.envid, strlen(mail.envid)),
			   "ENVID with a control octet");
		FUZZ_CHECK(!fuzz_has_control(mail.ret, strlen(mail.ret)),
			   "RET with a control octet");
		if (!mail.smtputf8)
			for (size_t i = 0; i < n; i++)
				FUZZ_CHECK((unsigned char)mail.path[i] < 0x80,
					   "8-bit path without SMTPUTF8");
	}
	memset(&err, 0, sizeof(err));
	r = smtp_parse_rcpt(cmd.args, &rcpt, &err);
	check_err(r, &err);
	if (r == 0) {
		size_t n = strlen(rcpt.path);

		FUZZ_CHECK(n > 0 && n <= SMTP_PATH_MAX, "RCPT path of %zu octets",
			   n);
		FUZZ_CHECK(!fuzz_has_control(rcpt.path, n),
			   "RCPT path with a control octet");
		FUZZ_CHECK(!fuzz_has_control(rcpt.orcpt, strlen(rcpt.orcpt)),
			   "ORCPT with a control octet");
		FUZZ_CHECK(!fuzz_has_control(rcpt.notify, strlen(rcpt.notify)),
			   "NOTIFY with a control octet");
	}
	return 0;
}
