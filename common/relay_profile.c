/* The provider profiles. Each entry follows the provider's own
 * documentation, named in source (README "Relaying through a provider"
 * lists them with what must be set up at the provider). */

#include "autoconf.h"

#include "relay_profile.h"

#include <string.h>

#define MS_TOKEN_URL "https://login.microsoftonline.com/%s/oauth2/v2.0/token"

static const struct relay_profile profiles[] = {
	{ .name = "microsoft365", .arg = PROFILE_ARG_OPTIONAL,
	  .arg_what = "tenant", .host = "smtp.office365.com", .port = "587",
	  .tls = RELAY_TLS_STARTTLS, .mech = RELAY_AUTH_XOAUTH2,
	  .grant = OAUTH2_GRANT_CLIENT_CREDENTIALS,
	  .token_url = MS_TOKEN_URL,
	  .scope = "https://outlook.office365.com/.default",
	  .source = "https://learn.microsoft.com/en-us/exchange/client-"
		    "developer/legacy-protocols/how-to-authenticate-an-imap-"
		    "pop-smtp-application-by-using-oauth" },
	{ .name = "google-workspace", .host = "smtp.gmail.com", .port = "465",
	  .tls = RELAY_TLS_TLS, .mech = RELAY_AUTH_XOAUTH2,
	  .grant = OAUTH2_GRANT_JWT_BEARER, .scope = "https://mail.google.com/",
	  .source = "https://developers.google.com/workspace/gmail/imap/"
		    "xoauth2-protocol" },
	{ .name = "google-smtp-relay", .host = "smtp-relay.gmail.com",
	  .port = "587", .tls = RELAY_TLS_STARTTLS,
	  .source = "https://support.google.com/a/answer/2956491" },
	{ .name = "amazon-ses", .arg = PROFILE_ARG_REQUIRED,
	  .arg_what = "region", .host = "email-smtp.%s.amazonaws.com",
	  .port = "587", .tls = RELAY_TLS_STARTTLS,
	  .source = "https://docs.aws.amazon.com/ses/latest/dg/"
		    "smtp-connect.html" },
	{ .name = "sendgrid", .host = "smtp.sendgrid.net", .port = "587",
	  .tls = RELAY_TLS_STARTTLS, .auth_user = "apikey",
	  .source = "https://www.twilio.com/docs/sendgrid/for-developers/"
		    "sending-email/integrating-with-the-smtp-api" },
	{ .name = "mailgun", .host = "smtp.mailgun.org", .port = "587",
	  .tls = RELAY_TLS_STARTTLS,
	  .source = "https://documentation.mailgun.com/docs/mailgun/"
		    "user-manual/smtp-protocol/smtp-relay.md" },
	{ .name = "postmark", .host = "smtp.postmarkapp.com", .port = "587",
	  .tls = RELAY_TLS_STARTTLS,
	  .source = "https://postmarkapp.com/support/article/811-what-are-"
		    "the-smtp-details-api-tokens-i-should-be-using" },
	{ .name = "mailjet", .host = "in-v3.mailjet.com", .port = "587",
	  .tls = RELAY_TLS_STARTTLS,
	  .source = "https://rubydoc.info/gems/mailjet/Mailjet/Mailer" },
	{ .name = "mandrill", .host = "smtp.mandrillapp.com", .port = "587",
	  .tls = RELAY_TLS_STARTTLS,
	  .source = "https://mailchimp.com/developer/transactional/" },
	/* "{ServiceName}.smtp.com", the name given by SMTP.com. */
	{ .name = "smtp.com", .arg = PROFILE_ARG_REQUIRED,
	  .arg_what = "service name", .host = "%s.smtp.com", .port = "2525",
	  .tls = RELAY_TLS_STARTTLS,
	  .source = "http://api.smtp.com/doc/" },
	{ .name = "zoho", .host = "smtppro.zoho.com", .port = "465",
	  .tls = RELAY_TLS_TLS,
	  .source = "https://www.zoho.com/mail/help/zoho-smtp.html (paid "
		    "organization accounts; smtp.zoho.com for personal)" },
	{ .name = "fastmail", .host = "smtp.fastmail.com", .port = "465",
	  .tls = RELAY_TLS_TLS, .mech = RELAY_AUTH_PLAIN,
	  .source = "https://www.fastmail.com/help/technical/"
		    "servernamesandports.html" },
	{ .name = "rackspace", .host = "secure.emailsrvr.com", .port = "465",
	  .tls = RELAY_TLS_TLS,
	  .source = "https://docs.rackspace.com/docs/email-server-settings" },
	{ .name = "protonmail-bridge", .host = "127.0.0.1", .port = "1025",
	  .tls = RELAY_TLS_STARTTLS, .needs_ca = 1,
	  .source = "https://proton.me/support/macos-certificate-warning" },
};

#define N_PROFILES (sizeof(profiles) / sizeof(profiles[0]))

const struct relay_profile *relay_profile_all(size_t *n_r)
{
	*n_r = N_PROFILES;
	return profiles;
}

/* A region or tenant: letters, digits, '-' and '.', as in a DNS label
 * or a tenant's domain or GUID; it ends up in a host name or a URL. */
static bool arg_ok(const char *s)
{
	if (*s == '\0' || *s == '.' || *s == '-')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

const struct relay_profile *relay_profile_find(const char *spec, char *arg,
					       const char **error_r)
{
	const char *colon = strchr(spec, ':');
	size_t n = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
	const struct relay_profile *p = NULL;

	arg[0] = '\0';
	for (size_t i = 0; i < N_PROFILES; i++) {
		if (strlen(profiles[i].name) == n &&
		    strncmp(profiles[i].name, spec, n) == 0) {
			p = &profiles[i];
			break;
		}
	}
	if (p == NULL) {
		*error_r = "unknown profile";
		return NULL;
	}
	if (colon == NULL) {
		if (p->arg == PROFILE_ARG_REQUIRED) {
			*error_r = "this profile needs an argument";
			return NULL;
		}
		return p;
	}
	if (p->arg == PROFILE_ARG_NONE) {
		*error_r = "this profile takes no argument";
		return NULL;
	}
	if (strlen(colon + 1) > RELAY_PROFILE_ARG_MAX || !arg_ok(colon + 1)) {
		*error_r = "malformed argument (letters, digits, '-' and '.')";
		return NULL;
	}
	strcpy(arg, colon + 1);
	return p;
}
