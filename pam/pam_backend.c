#include "autoconf.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <security/pam_appl.h>

#include "log.h"
#include "pam_backend.h"
#include "xalloc.h"

#define GROUPS_START 64
#define GROUPS_MAX 65536	/* NGROUPS_MAX on Linux */

struct pam_backend {
	char *service;
	char **require_group;
	size_t n_require_group;
	char *address_domain;	/* NULL: no address */
	const struct config_send_as *send_as;	/* the config's, not copied */
	size_t n_send_as;
	const struct config *cfg;	/* for the group rate groups */
};

struct pam_backend *pam_backend_new(const char *service,
				    char *const *require_group,
				    size_t n_require_group,
				    const char *address_domain,
				    const struct config_send_as *send_as,
				    size_t n_send_as, const struct config *cfg)
{
	struct pam_backend *pb = xcalloc(1, sizeof(*pb));

	pb->service = xstrdup(service);
	pb->require_group = xcalloc(n_require_group, sizeof(char *));
	for (size_t i = 0; i < n_require_group; i++)
		pb->require_group[i] = xstrdup(require_group[i]);
	pb->n_require_group = n_require_group;
	if (address_domain != NULL && address_domain[0] != '\0')
		pb->address_domain = xstrdup(address_domain);
	pb->send_as = send_as;
	pb->n_send_as = n_send_as;
	pb->cfg = cfg;
	return pb;
}

void pam_backend_free(struct pam_backend **pbp)
{
	struct pam_backend *pb = *pbp;

	if (pb == NULL)
		return;
	*pbp = NULL;
	for (size_t i = 0; i < pb->n_require_group; i++)
		free(pb->require_group[i]);
	free(pb->require_group);
	free(pb->service);
	free(pb->address_domain);
	free(pb);
}

static void set_result(struct auth_reply *rep, enum auth_result result,
		       const char *reason)
{
	rep->result = result;
	snprintf(rep->reason, sizeof(rep->reason), "%s", reason);
}

/* --- the conversation --- */

struct conv_data {
	const char *user;
	const char *password;
};

static void responses_free(struct pam_response *resp, int n)
{
	for (int i = 0; i < n; i++) {
		if (resp[i].resp == NULL)
			continue;
		explicit_bzero(resp[i].resp, strlen(resp[i].resp));
		free(resp[i].resp);
	}
	free(resp);
}

/* Tolerates everything, like Dovecot's pam_userpass_conv: the password
 * for every hidden prompt, the user name for every visible one, messages
 * logged, any other style refused. The replies belong to the module,
 * which wipes and frees them (Linux-PAM's pam_get_authtok does); on
 * failure nothing half-built is left behind. */
static int conv(int num_msg, const struct pam_message **msg,
		struct pam_response **resp_r, void *appdata_ptr)
{
	const struct conv_data *cd = appdata_ptr;
	struct pam_response *resp;
	int ret = PAM_SUCCESS;

	if (resp_r == NULL)
		return PAM_CONV_ERR;
	*resp_r = NULL;
	if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || msg == NULL ||
	    cd == NULL)
		return PAM_CONV_ERR;
	resp = calloc((size_t)num_msg, sizeof(*resp));
	if (resp == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < num_msg && ret == PAM_SUCCESS; i++) {
		const char *text;

		if (msg[i] == NULL) {
			ret = PAM_CONV_ERR;
			break;
		}
		text = msg[i]->msg != NULL ? msg[i]->msg : "";
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			resp[i].resp = strdup(cd->password);
			if (resp[i].resp == NULL)
				ret = PAM_BUF_ERR;
			break;
		case PAM_PROMPT_ECHO_ON:
			resp[i].resp = strdup(cd->user);
			if (resp[i].resp == NULL)
				ret = PAM_BUF_ERR;
			break;
		case PAM_ERROR_MSG:
			log_notice("pam: user %s: %s", cd->user, text);
			break;
		case PAM_TEXT_INFO:
			log_info("pam: user %s: %s", cd->user, text);
			break;
		default:
			log_warn("pam: user %s: unsupported message style %d",
				 cd->user, msg[i]->msg_style);
			ret = PAM_CONV_ERR;
			break;
		}
	}
	if (ret != PAM_SUCCESS) {
		responses_free(resp, num_msg);
		return ret;
	}
	*resp_r = resp;
	return PAM_SUCCESS;
}

/* pam_unix and others sleep up to 2 s after a failure: the worker would
 * stall with it. The daemon applies failure_delay before every 535. */
static void fail_delay_none(int retval, unsigned usec_delay, void *appdata_ptr)
{
}

static enum auth_result pam_result(int ret)
{
	switch (ret) {
	case PAM_SUCCESS:
		return AUTH_OK;
	case PAM_AUTH_ERR:
	case PAM_USER_UNKNOWN:
	case PAM_PERM_DENIED:
	case PAM_ACCT_EXPIRED:
	case PAM_NEW_AUTHTOK_REQD:	/* no way to change it over SMTP */
	case PAM_AUTHTOK_EXPIRED:
	case PAM_MAXTRIES:
	case PAM_CRED_INSUFFICIENT:
		return AUTH_PERMFAIL;
	default:
		/* PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR, PAM_BUF_ERR,
		 * PAM_CONV_ERR, PAM_ABORT, and whatever a module invents:
		 * an outage, 454, never a 235. */
		return AUTH_TEMPFAIL;
	}
}

/* A name goes into log lines and into the Received: and identity
 * headers: no control characters. A CR LF in a SASL authcid would be a
 * header injection if a lenient directory matched it. */
static bool name_clean(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* pam_authenticate, then pam_acct_mgmt, then PAM_USER into canonical
 * (AUTH_USER_MAX + 1 octets). */
static void pam_run(const struct pam_backend *pb,
		    const struct auth_request *req, struct auth_reply *rep,
		    char *canonical)
{
	struct conv_data cd = { req->user, req->password };
	struct pam_conv pc = { conv, &cd };
	pam_handle_t *pamh = NULL;
	const char *step = "pam_start";
	const void *item = NULL;
	int ret;

	ret = pam_start(pb->service, req->user, &pc, &pamh);
	if (ret != PAM_SUCCESS) {
		log_err("pam_start(%s): %s", pb->service,
			pam_strerror(pamh, ret));
		set_result(rep, AUTH_TEMPFAIL, pam_strerror(pamh, ret));
		return;
	}
	if (req->client_ip[0] != '\0') {
		step = "PAM_RHOST";
		ret = pam_set_item(pamh, PAM_RHOST, req->client_ip);
	}
	if (ret == PAM_SUCCESS) {
		step = "PAM_FAIL_DELAY";
		ret = pam_set_item(pamh, PAM_FAIL_DELAY,
				   (const void *)fail_delay_none);
	}
	if (ret == PAM_SUCCESS) {
		step = "pam_authenticate";
		ret = pam_authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	}
	/* An expired or locked account has a valid password but may not
	 * send; only the account step knows. */
	if (ret == PAM_SUCCESS) {
		step = "pam_acct_mgmt";
		ret = pam_acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	}
	/* A module may map the login name (case, realm, alias): the name
	 * PAM ends with is the identity. */
	if (ret == PAM_SUCCESS) {
		step = "PAM_USER";
		ret = pam_get_item(pamh, PAM_USER, &item);
	}
	if (ret == PAM_SUCCESS) {
		const char *name = item;

		if (name == NULL || name[0] == '\0' ||
		    strlen(name) > AUTH_USER_MAX || !name_clean(name)) {
			log_err("pam: user %s: PAM_USER is %s", req->user,
				name == NULL || name[0] == '\0' ? "empty" :
				!name_clean(name) ? "not printable" :
				"too long");
			set_result(rep, AUTH_TEMPFAIL, "bad PAM_USER");
		} else {
			strcpy(canonical, name);
			set_result(rep, AUTH_OK, "");
		}
	} else {
		rep->result = pam_result(ret);
		snprintf(rep->reason, sizeof(rep->reason), "%s",
			 pam_strerror(pamh, ret));
		if (rep->result == AUTH_TEMPFAIL)
			log_warn("pam: user %s: %s: %s", req->user, step,
				 pam_strerror(pamh, ret));
		else
			log_debug("pam: user %s: %s: %s", req->user, step,
				  pam_strerror(pamh, ret));
	}
	pam_end(pamh, ret);
}

/* --- NSS --- */

/* errno after a look-up that found nothing: 0, ENOENT, ESRCH mean "no
 * such entry"; anything else is a failing name service. */
static bool nss_not_found(int err)
{
	return err == 0 || err == ENOENT || err == ESRCH;
}

/* The user's groups (primary included) into *groups_r; 0, or -1 with
 * rep set (PERMFAIL: unknown to NSS; TEMPFAIL: NSS failing). */
static int user_groups(const char *user, gid_t **groups_r, int *n_r,
		       struct auth_reply *rep)
{
	struct passwd *pw;
	gid_t base, *groups = NULL;
	int n = GROUPS_START, got;

	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		int err = errno;

		if (nss_not_found(err)) {
			log_warn("user %s: accepted by PAM but not found "
				 "via NSS", user);
			set_result(rep, AUTH_PERMFAIL,
				   "user not found via NSS");
		} else {
			log_err("getpwnam(%s): %s", user, strerror(err));
			set_result(rep, AUTH_TEMPFAIL, "getpwnam failed");
		}
		return -1;
	}
	base = pw->pw_gid;

	/* getgrouplist() says how many it needs when the array is too
	 * small; grow to that (or double), up to the kernel's limit. */
	for (;;) {
		groups = xreallocarray(groups, (size_t)n, sizeof(*groups));
		got = n;
		if (getgrouplist(user, base, groups, &got) >= 0)
			break;
		if (n >= GROUPS_MAX) {
			log_err("user %s: more than %d groups", user,
				GROUPS_MAX);
			set_result(rep, AUTH_TEMPFAIL, "too many groups");
			free(groups);
			return -1;
		}
		n = got > n ? got : n * 2;
		if (n > GROUPS_MAX)
			n = GROUPS_MAX;
	}
	*groups_r = groups;
	*n_r = got;
	return 0;
}

/* 1 if the group named name is among groups, 0 if not (or no such
 * group), -1 if NSS failed to say. */
static int member_of(const char *name, const gid_t *groups, int n,
		     const char *what)
{
	struct group *gr;

	errno = 0;
	gr = getgrnam(name);
	if (gr == NULL) {
		int err = errno;

		if (nss_not_found(err)) {
			log_warn("%s %s: no such group", what, name);
			return 0;
		}
		log_err("getgrnam(%s): %s", name, strerror(err));
		return -1;
	}
	for (int k = 0; k < n; k++)
		if (groups[k] == gr->gr_gid)
			return 1;
	return 0;
}

static void group_check(const struct pam_backend *pb, const gid_t *groups,
			int n, struct auth_reply *rep)
{
	bool nss_error = false;

	for (size_t i = 0; i < pb->n_require_group; i++) {
		int r = member_of(pb->require_group[i], groups, n,
				  "require_group");

		if (r > 0) {
			set_result(rep, AUTH_OK, "");
			return;
		}
		if (r < 0)
			nss_error = true;
	}
	/* A group we could not look up might have been the one. */
	if (nss_error)
		set_result(rep, AUTH_TEMPFAIL, "group look-up failed");
	else
		set_result(rep, AUTH_PERMFAIL, AUTH_REASON_NOT_IN_GROUP);
}

/* Report the rate groups ([policy] group_rate, group_recipient_rate) the
 * user is in, each once, spelt as configured. */
static void add_group(struct auth_reply *rep, const char *group)
{
	for (size_t i = 0; i < rep->n_group; i++)
		if (strcmp(rep->group[i], group) == 0)
			return;
	if (rep->n_group < AUTH_MAX_GROUPS && strlen(group) <= AUTH_GROUP_MAX)
		strcpy(rep->group[rep->n_group++], group);
}

static int rate_groups(const struct pam_backend *pb, const gid_t *groups,
		       int n, struct auth_reply *rep)
{
	const struct config *cfg = pb->cfg;

	for (size_t i = 0; cfg != NULL && i < cfg->n_group_rate; i++) {
		int r = member_of(cfg->group_rate[i].group, groups, n,
				  "group_rate");

		if (r < 0)
			return -1;
		if (r > 0)
			add_group(rep, cfg->group_rate[i].group);
	}
	for (size_t i = 0; cfg != NULL && i < cfg->n_group_recipient_rate; i++) {
		int r = member_of(cfg->group_recipient_rate[i].group, groups,
				  n, "group_recipient_rate");

		if (r < 0)
			return -1;
		if (r > 0)
			add_group(rep, cfg->group_recipient_rate[i].group);
	}
	return 0;
}

static void add_address(struct auth_reply *rep, const char *user,
			const char *addr)
{
	if (rep->n_address >= AUTH_MAX_ADDRESSES ||
	    strlen(addr) > AUTH_ADDRESS_MAX) {
		log_warn("user %s: address %s not sent (too many or too long)",
			 user, addr);
		return;
	}
	strcpy(rep->address[rep->n_address++], addr);
}

void pam_backend_auth(const struct pam_backend *pb,
		      const struct auth_request *req, struct auth_reply *rep)
{
	char canonical[AUTH_USER_MAX + 1] = "";
	int len;

	rep->user[0] = '\0';
	rep->n_address = 0;
	rep->n_group = 0;
	if (req->user[0] == '\0') {
		set_result(rep, AUTH_PERMFAIL, "empty user name");
		return;
	}
	if (!name_clean(req->user)) {
		set_result(rep, AUTH_PERMFAIL,
			   "control character in the user name");
		return;
	}
	/* Some modules take an empty password for "no password set", and
	 * pam_unix with nullok lets it in: refuse it before PAM sees it. */
	if (req->password[0] == '\0') {
		set_result(rep, AUTH_PERMFAIL, "empty password");
		return;
	}

	pam_run(pb, req, rep, canonical);
	if (rep->result != AUTH_OK)
		return;
	if (pb->n_require_group > 0 || pb->n_send_as > 0 ||
	    (pb->cfg != NULL && (pb->cfg->n_group_rate > 0 ||
				 pb->cfg->n_group_recipient_rate > 0))) {
		gid_t *groups = NULL;
		int n = 0;

		if (user_groups(canonical, &groups, &n, rep) < 0) {
			/* Unknown to NSS only matters for require_group:
			 * for send_as it just means no shared mailbox. */
			if (pb->n_require_group > 0 ||
			    rep->result == AUTH_TEMPFAIL)
				return;
			set_result(rep, AUTH_OK, "");
		}
		if (pb->n_require_group > 0)
			group_check(pb, groups, n, rep);
		/* Shared mailboxes: members of the group may send as. */
		for (size_t i = 0; rep->result == AUTH_OK &&
		     i < pb->n_send_as; i++) {
			int r = member_of(pb->send_as[i].group, groups, n,
					  "send_as");

			if (r > 0)
				add_address(rep, canonical,
					    pb->send_as[i].address);
			else if (r < 0)
				set_result(rep, AUTH_TEMPFAIL,
					   "group look-up failed");
		}
		if (rep->result == AUTH_OK && groups != NULL &&
		    rate_groups(pb, groups, n, rep) < 0)
			set_result(rep, AUTH_TEMPFAIL, "group look-up failed");
		free(groups);
		if (rep->result != AUTH_OK) {
			rep->n_address = 0;
			rep->n_group = 0;
			return;
		}
	}

	strcpy(rep->user, canonical);
	if (pb->address_domain != NULL) {
		char own[AUTH_ADDRESS_MAX + 2];

		len = snprintf(own, sizeof(own), "%s@%s", canonical,
			       pb->address_domain);
		if (len < 0 || (size_t)len >= sizeof(own) - 1) {
			log_warn("user %s: address too long, none sent",
				 canonical);
		} else {
			/* The user's own address first: it is the one
			 * MAIL AUTH= names upstream. */
			size_t keep = rep->n_address < AUTH_MAX_ADDRESSES ?
				      rep->n_address : AUTH_MAX_ADDRESSES - 1;

			memmove(rep->address[1], rep->address[0],
				keep * sizeof(rep->address[0]));
			strcpy(rep->address[0], own);
			rep->n_address = keep + 1;
		}
	}
}
