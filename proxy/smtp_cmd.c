#include "autoconf.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "smtp_chars.h"
#include "smtp_cmd.h"
#include "smtp_param.h"
#include "utf8.h"

static const struct {
	const char *name;
	enum smtp_verb verb;
} smtp_verbs[] = {
	{ "HELO", SMTP_VERB_HELO },
	{ "EHLO", SMTP_VERB_EHLO },
	{ "MAIL", SMTP_VERB_MAIL },
	{ "RCPT", SMTP_VERB_RCPT },
	{ "DATA", SMTP_VERB_DATA },
	{ "RSET", SMTP_VERB_RSET },
	{ "NOOP", SMTP_VERB_NOOP },
	{ "QUIT", SMTP_VERB_QUIT },
	{ "VRFY", SMTP_VERB_VRFY },
	{ "EXPN", SMTP_VERB_EXPN },
	{ "HELP", SMTP_VERB_HELP },
	{ "STARTTLS", SMTP_VERB_STARTTLS },
	{ "AUTH", SMTP_VERB_AUTH },
	{ "BDAT", SMTP_VERB_BDAT },
	{ "ETRN", SMTP_VERB_ETRN },
};

#define N_VERBS (sizeof(smtp_verbs) / sizeof(smtp_verbs[0]))

int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
	size_t i, vlen;

	cmd->verb = SMTP_VERB_UNKNOWN;
	cmd->args = "";
	/* RFC 5321 §2.4: commands are US-ASCII; a NUL or control octet
	 * in one is never legitimate, and could cut or split a value we
	 * log or pass on. */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
	}
	/* args is used as a C string; the line reader NUL-terminates. */
	assert(line[len] == '\0');

	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	for (i = 0; i < N_VERBS; i++) {
		if (ascii_caseeq(line, vlen, smtp_verbs[i].name)) {
			cmd->verb = smtp_verbs[i].verb;
			break;
		}
	}
	for (i = vlen; i < len && line[i] == ' '; i++)
		;
	if (i < len)
		cmd->args = line + i;
	return 0;
}

const char *smtp_verb_name(enum smtp_verb verb)
{
	for (size_t i = 0; i < N_VERBS; i++)
		if (smtp_verbs[i].verb == verb)
			return smtp_verbs[i].name;
	return "UNKNOWN";
}

/* --- MAIL and RCPT arguments --- */

enum path_role { ROLE_SENDER, ROLE_RECIPIENT };

static int set_error(struct smtp_arg_error *err, int code,
		     const char *enhanced, const char *text)
{
	err->code = code;
	err->enhanced = enhanced;
	err->text = text;
	return -1;
}

static int syntax_error(struct smtp_arg_error *err, enum path_role role)
{
	return set_error(err, 501, "5.5.2", role == ROLE_SENDER ?
			 "Syntax: MAIL FROM:<address> [parameters]" :
			 "Syntax: RCPT TO:<address> [parameters]");
}

/* RFC 3463 §3.2: X.1.7 bad sender's, X.1.3 bad destination mailbox
 * address syntax. */
static int address_error(struct smtp_arg_error *err, enum path_role role,
			 const char *text)
{
	return set_error(err, 553, role == ROLE_SENDER ? "5.1.7" : "5.1.3",
			 text);
}

/* The part of a path between its angle brackets being parsed. */
struct cursor {
	const char *p;
	const char *end;
	bool eightbit;		/* saw UTF-8: needs SMTPUTF8 */
};

/* Consumes one UTF-8 character (RFC 6531 §3.3 UTF8-non-ascii). */
static bool take_utf8(struct cursor *cur)
{
	size_t n = utf8_char_len(cur->p, cur->end);

	if (n == 0)
		return false;
	cur->p += n;
	cur->eightbit = true;
	return true;
}

/* RFC 5321 §4.1.2: Local-part = Dot-string / Quoted-string. */
static bool parse_local_part(struct cursor *cur)
{
	if (cur->p < cur->end && *cur->p == '"') {
		cur->p++;
		for (;;) {
			char c;

			if (cur->p >= cur->end)
				return false;
			c = *cur->p;
			if (c == '"') {
				cur->p++;
				return true;
			}
			if (c == '\\') {
				/* quoted-pairSMTP = "\" %d32-126 */
				cur->p++;
				if (cur->p >= cur->end || *cur->p < 32 ||
				    *cur->p > 126)
					return false;
				cur->p++;
			} else if (is_8bit(c)) {
				if (!take_utf8(cur))
					return false;
			} else if (c >= 32 && c <= 126) {
				/* qtextSMTP: all but '"' and '\' */
				cur->p++;
			} else {
				return false;
			}
		}
	}

	for (;;) {
		const char *atom = cur->p;

		while (cur->p < cur->end) {
			if (is_8bit(*cur->p)) {
				if (!take_utf8(cur))
					return false;
			} else if (is_atext(*cur->p)) {
				cur->p++;
			} else {
				break;
			}
		}
		/* Dot-string: no empty atom, so no leading, trailing
		 * or doubled dot */
		if (cur->p == atom)
			return false;
		if (cur->p < cur->end && *cur->p == '.')
			cur->p++;
		else
			return true;
	}
}

/* RFC 5321 §4.1.2: Domain = sub-domain *("." sub-domain), sub-domain =
 * Let-dig [Ldh-str], plus RFC 6531 U-labels; labels are at most 63
 * octets (RFC 1035 §2.3.4). Stops where the domain ends. */
static bool parse_domain(struct cursor *cur)
{
	for (;;) {
		const char *label = cur->p;
		bool hyphen_last = false;

		while (cur->p < cur->end) {
			char c = *cur->p;

			if (is_8bit(c)) {
				if (!take_utf8(cur))
					return false;
				hyphen_last = false;
			} else if (is_alnum(c)) {
				cur->p++;
				hyphen_last = false;
			} else if (c == '-' && cur->p != label) {
				cur->p++;
				hyphen_last = true;
			} else {
				break;
			}
		}
		if (cur->p == label || hyphen_last || cur->p - label > 63)
			return false;
		if (cur->p < cur->end && *cur->p == '.')
			cur->p++;
		else
			return true;
	}
}

/* RFC 5321 §4.1.3: IPv4-address-literal = Snum 3("." Snum). */
static bool is_ipv4_literal(const char *s, size_t len)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned value = 0;
		size_t digits = 0;

		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		while (i < len && is_digit(s[i]) && digits < 3) {
			value = value * 10 + (unsigned)(s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || value > 255)
			return false;
	}
	return i == len;
}

/* RFC 5321 §4.1.3: "[" IPv4 / "IPv6:" IPv6 "]". No tag other than IPv6
 * is registered, so General-address-literal is refused. */
static bool parse_address_literal(struct cursor *cur)
{
	const char *content = cur->p + 1;
	const char *close = memchr(content, ']', (size_t)(cur->end - content));
	size_t len;

	if (close == NULL)
		return false;
	len = (size_t)(close - content);
	if (len > 5 && ascii_caseeq(content, 5, "IPV6:")) {
		char buf[INET6_ADDRSTRLEN];
		struct in6_addr addr;

		if (len - 5 >= sizeof(buf))
			return false;
		memcpy(buf, content + 5, len - 5);
		buf[len - 5] = '\0';
		if (inet_pton(AF_INET6, buf, &addr) != 1)
			return false;
	} else if (!is_ipv4_literal(content, len)) {
		return false;
	}
	cur->p = close + 1;
	return true;
}

/* The '>' that closes a path starting after its '<': the first one
 * outside a quoted local part. */
static const char *path_close(const char *p)
{
	bool quoted = false;

	for (; *p != '\0'; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>')
			return p;
	}
	return NULL;
}

/* Parses "<path>" at *pp (RFC 5321 §4.1.2 Path / "<>"), stores the
 * mailbox without brackets and source route in path (SMTP_PATH_MAX + 1
 * octets; "" for <>) and moves *pp past the '>'. */
static int parse_path(const char **pp, char *path, enum path_role role,
		      bool *eightbit_r, struct smtp_arg_error *err)
{
	const char *open = *pp, *close, *mailbox, *domain;
	struct cursor cur;
	bool ok;
	size_t len;

	if (*open != '<')
		return syntax_error(err, role);
	close = path_close(open + 1);
	if (close == NULL)
		return syntax_error(err, role);
	*pp = close + 1;
	cur.p = open + 1;
	cur.end = close;
	cur.eightbit = false;

	if (cur.p == cur.end) {
		path[0] = '\0';
		*eightbit_r = false;
		return 0;
	}

	/* RFC 5321 appendix C: source routes must still be accepted, and
	 * may be ignored, which we do. */
	if (*cur.p == '@') {
		for (;;) {
			const char *dom = ++cur.p;

			if (!parse_domain(&cur) ||
			    cur.p - dom > SMTP_DOMAIN_MAX || cur.p >= cur.end)
				return address_error(err, role,
						     "Bad source route syntax");
			if (*cur.p == ':') {
				cur.p++;
				break;
			}
			if (*cur.p != ',' || cur.p + 1 >= cur.end ||
			    cur.p[1] != '@')
				return address_error(err, role,
						     "Bad source route syntax");
			cur.p++;
		}
	}
	mailbox = cur.p;

	/* RFC 5321 §4.1.1.3: "<Postmaster>" without a domain, any case. */
	if (role == ROLE_RECIPIENT && mailbox == open + 1 &&
	    ascii_caseeq(mailbox, (size_t)(cur.end - mailbox), "POSTMASTER")) {
		memcpy(path, mailbox, (size_t)(cur.end - mailbox));
		path[cur.end - mailbox] = '\0';
		*eightbit_r = false;
		return 0;
	}

	if (!parse_local_part(&cur))
		return address_error(err, role, "Bad address syntax");
	/* RFC 5321 §4.5.3.1.1 */
	if (cur.p - mailbox > SMTP_LOCAL_MAX)
		return address_error(err, role, "Local part too long");
	if (cur.p >= cur.end || *cur.p != '@')
		return address_error(err, role,
				     "Bad address syntax: domain required");
	domain = ++cur.p;
	if (cur.p < cur.end && *cur.p == '[')
		ok = parse_address_literal(&cur);
	else
		ok = parse_domain(&cur);
	if (!ok || cur.p != cur.end)
		return address_error(err, role, "Bad domain syntax");
	/* RFC 5321 §4.5.3.1.2 */
	if (cur.end - domain > SMTP_DOMAIN_MAX)
		return address_error(err, role, "Domain too long");
	/* RFC 5321 §4.5.3.1.3, counted on the mailbox we keep */
	len = (size_t)(cur.end - mailbox);
	if (len > SMTP_PATH_MAX)
		return address_error(err, role, "Address too long");

	memcpy(path, mailbox, len);
	path[len] = '\0';
	*eightbit_r = cur.eightbit;
	return 0;
}

static int bad_param_value(struct smtp_arg_error *err, const char *text)
{
	return set_error(err, 501, "5.5.4", text);
}

/* prm's index in names; -1 with err set if it is unknown or was
 * already given in this command. */
static int param_known(const struct smtp_param *prm, const char *const *names,
		       const char *unknown, const char *repeated,
		       unsigned *seen, struct smtp_arg_error *err)
{
	int i = smtp_param_index(prm, names);

	if (i < 0)
		return set_error(err, 555, "5.5.4", unknown);
	if ((*seen & (1U << i)) != 0)
		return set_error(err, 555, "5.5.4", repeated);
	*seen |= 1U << i;
	return i;
}

enum mail_param { MAIL_SIZE, MAIL_BODY, MAIL_SMTPUTF8, MAIL_AUTH, MAIL_RET,
		  MAIL_ENVID };
static const char *const mail_params[] = { "SIZE", "BODY", "SMTPUTF8",
					   "AUTH", "RET", "ENVID", NULL };

static int mail_param(const struct smtp_param *prm, void *args,
		      struct smtp_arg_error *err, unsigned *seen)
{
	struct smtp_mail_args *out = args;
	int i = param_known(prm, mail_params, "Unknown MAIL parameter",
			    "Repeated MAIL parameter", seen, err);

	if (i < 0)
		return -1;

	switch ((enum mail_param)i) {
	case MAIL_SIZE:
		if (!smtp_param_size(prm, &out->size))
			return bad_param_value(err, "Bad SIZE value");
		out->has_size = true;
		return 0;
	case MAIL_BODY:
		/* RFC 6152 §2 */
		if (smtp_param_value_is(prm, "7BIT"))
			out->body = SMTP_BODY_7BIT;
		else if (smtp_param_value_is(prm, "8BITMIME"))
			out->body = SMTP_BODY_8BITMIME;
		else
			return bad_param_value(err, "Bad BODY value");
		return 0;
	case MAIL_SMTPUTF8:
		/* RFC 6531 §3.4: no value */
		if (prm->value != NULL)
			return bad_param_value(err, "SMTPUTF8 takes no value");
		out->smtputf8 = true;
		return 0;
	case MAIL_AUTH:
		/* RFC 4954 §5: AUTH=xtext or AUTH=<>; checked, then
		 * dropped: the relay states the identity itself. */
		if (prm->value == NULL || !smtp_param_is_xtext(prm->value, prm->value_len))
			return bad_param_value(err, "Bad AUTH value");
		out->has_auth = true;
		return 0;
	case MAIL_RET:
		/* RFC 3461 §4.3 */
		if (smtp_param_value_is(prm, "FULL"))
			strcpy(out->ret, "FULL");
		else if (smtp_param_value_is(prm, "HDRS"))
			strcpy(out->ret, "HDRS");
		else
			return bad_param_value(err, "Bad RET value");
		return 0;
	case MAIL_ENVID:
		/* RFC 3461 §4.4 */
		if (!smtp_param_copy_xtext(prm, out->envid))
			return bad_param_value(err, "Bad ENVID value");
		return 0;
	}
	return set_error(err, 555, "5.5.4", "Unknown MAIL parameter");
}

/* "FROM:<path>" or "TO:<path>" up to the parameters: the keyword
 * (case-insensitive), optional spaces (RFC 5321 §4.1.1.2 has none after
 * the colon, but clients commonly send one), the path, then a space or
 * the end. Leaves *pp at the parameters. */
static int parse_keyword_path(const char **pp, const char *keyword,
			      enum path_role role, char *path, bool *eightbit,
			      struct smtp_arg_error *err)
{
	const char *p = *pp;

	if (!ascii_caseprefix(p, keyword)) {
		syntax_error(err, role);
		return -1;
	}
	p += strlen(keyword);
	while (*p == ' ')
		p++;
	if (parse_path(&p, path, role, eightbit, err) < 0)
		return -1;
	if (*p != ' ' && *p != '\0') {
		syntax_error(err, role);
		return -1;
	}
	*pp = p;
	return 0;
}

/* The start of MAIL's or RCPT's arguments: err cleared, then the
 * KEYWORD:<path> head. */
static int args_head(const char **pp, const char *keyword,
		     enum path_role role,
		     char *path, bool *eightbit, struct smtp_arg_error *err)
{
	assert(*pp != NULL);
	memset(err, 0, sizeof(*err));
	return parse_keyword_path(pp, keyword, role, path, eightbit, err);
}

/* The parameters after the path, each through param (which refuses a
 * repeated one with the help of seen). */
typedef int param_fn(const struct smtp_param *prm, void *args,
		     struct smtp_arg_error *err, unsigned *seen);

static int args_params(const char **pp, param_fn *param, void *args,
		       const char *bad_syntax, struct smtp_arg_error *err)
{
	struct smtp_param prm;
	unsigned seen = 0;
	int r;

	while ((r = smtp_param_next(pp, &prm)) > 0)
		if (param(&prm, args, err, &seen) < 0)
			return -1;
	return r < 0 ? bad_param_value(err, bad_syntax) : 0;
}

int smtp_parse_mail(const char *args, struct smtp_mail_args *out,
		    struct smtp_arg_error *err)
{
	const char *p = args;
	bool eightbit;

	memset(out, 0, sizeof(*out));
	if (args_head(&p, "FROM:", ROLE_SENDER, out->path, &eightbit, err) < 0 ||
	    args_params(&p, mail_param, out, "Bad MAIL parameter syntax",
			err) < 0)
		goto fail;
	/* RFC 6531: a non-ASCII address needs SMTPUTF8; X.6.7 "Non-ASCII
	 * addresses not permitted for that sender/recipient". */
	if (eightbit && !out->smtputf8) {
		set_error(err, 553, "5.6.7",
			  "Non-ASCII address requires SMTPUTF8");
		goto fail;
	}
	return 0;

fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

enum rcpt_param { RCPT_NOTIFY, RCPT_ORCPT };
static const char *const rcpt_params[] = { "NOTIFY", "ORCPT", NULL };

static int rcpt_param(const struct smtp_param *prm, void *args,
		      struct smtp_arg_error *err, unsigned *seen)
{
	struct smtp_rcpt_args *out = args;
	int i = param_known(prm, rcpt_params, "Unknown RCPT parameter",
			    "Repeated RCPT parameter", seen, err);

	if (i < 0)
		return -1;

	switch ((enum rcpt_param)i) {
	case RCPT_NOTIFY:
		if (!smtp_param_notify(prm, out->notify, sizeof(out->notify)))
			return bad_param_value(err, "Bad NOTIFY value");
		return 0;
	case RCPT_ORCPT:
		if (!smtp_param_orcpt(prm, out->orcpt))
			return bad_param_value(err, "Bad ORCPT value");
		return 0;
	}
	return set_error(err, 555, "5.5.4", "Unknown RCPT parameter");
}

int smtp_parse_rcpt(const char *args, struct smtp_rcpt_args *out,
		    struct smtp_arg_error *err)
{
	const char *p = args;
	bool eightbit;

	memset(out, 0, sizeof(*out));
	if (args_head(&p, "TO:", ROLE_RECIPIENT, out->path, &eightbit, err) < 0)
		goto fail;
	/* RFC 5321 §4.1.2: "<>" is a Reverse-path, never a Forward-path. */
	if (out->path[0] == '\0') {
		set_error(err, 501, "5.1.3", "Null recipient not allowed");
		goto fail;
	}
	if (args_params(&p, rcpt_param, out, "Bad RCPT parameter syntax",
			err) < 0)
		goto fail;
	/* A non-ASCII recipient is legal only in an SMTPUTF8 transaction,
	 * which only the session knows (see smtp_cmd.h): eightbit is not
	 * checked here. */
	(void)eightbit;
	return 0;

fail:
	memset(out, 0, sizeof(*out));
	return -1;
}
