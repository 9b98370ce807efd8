#include "autoconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "autoconfig.h"
#include "config.h"
#include "log.h"

#define NAME_MAX_LEN 253	/* RFC 1035 §2.3.4, without the final dot */
#define PATH_LEN 4096

struct server {
	char host[NAME_MAX_LEN + 1];
	unsigned port;		/* 0: none */
	bool tls;		/* implicit TLS, else STARTTLS */
};

struct ac {
	const char *domain;
	bool address;		/* the login is the whole address */
	struct server smtps;	/* implicit TLS (465) */
	struct server submission;	/* STARTTLS (587) */
	struct server imap;
};

/* A host name as clients are given it: letters, digits, '-' and '.'
 * only, so that it needs no escaping in XML, plists or web server
 * configs. */
static bool dns_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN || s[0] == '.' || s[0] == '-')
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	return true;
}

static bool parse_port(const char *s, unsigned *port_r)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || v > 65535 ||
	    s[0] == '+' || s[0] == '-')
		return false;
	*port_r = (unsigned)v;
	return true;
}

/* "HOST[:PORT]": 993 unless given; 143 means STARTTLS. */
static bool parse_imap(const char *arg, struct server *s)
{
	const char *colon = strrchr(arg, ':');
	size_t hlen = colon != NULL ? (size_t)(colon - arg) : strlen(arg);

	if (hlen == 0 || hlen > NAME_MAX_LEN)
		return false;
	memcpy(s->host, arg, hlen);
	s->host[hlen] = '\0';
	s->port = 993;
	if (colon != NULL && !parse_port(colon + 1, &s->port))
		return false;
	s->tls = s->port != 143;
	return dns_name(s->host);
}

/* The login attribute of the LDAP backend: the one before "=%u". */
static bool ldap_login_is_address(const char *tmpl)
{
	static const char *const attrs[] = { "mail=%u", "userPrincipalName=%u",
					     NULL };

	for (size_t i = 0; tmpl != NULL && attrs[i] != NULL; i++) {
		const char *p = strcasestr(tmpl, attrs[i]);

		if (p != NULL && (p == tmpl || p[-1] == '(' || p[-1] == ','))
			return true;
	}
	return false;
}

/* RFC 4122 §4.3, version 5 (SHA-1), in the DNS name space: the same
 * name always gives the same UUID, so a regenerated profile replaces
 * the installed one. */
static void uuid_v5(const char *name, char out[37])
{
	static const unsigned char ns_dns[16] = {
		0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
		0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8 };
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t o = 0;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, ns_dns, sizeof(ns_dns)) != 1 ||
	    EVP_DigestUpdate(ctx, name, strlen(name)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		fatal("SHA-1 is not available");
	EVP_MD_CTX_free(ctx);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		o += (size_t)snprintf(out + o, 37 - o, "%02X", md[i]);
	}
	out[36] = '\0';
}

static FILE *open_out(const char *dir, const char *sub, const char *file,
		      char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/%s", dir, sub);
	if (sub[0] != '\0' && mkdir(path, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "authrelay: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	snprintf(path, size, "%s/%s%s%s", dir, sub, sub[0] ? "/" : "", file);
	f = fopen(path, "w");
	if (f == NULL)
		fprintf(stderr, "authrelay: %s: %s\n", path, strerror(errno));
	return f;
}

static int close_out(FILE *f, const char *path)
{
	if (ferror(f) || fclose(f) != 0) {
		fprintf(stderr, "authrelay: %s: write failed\n", path);
		return -1;
	}
	printf("%s\n", path);
	return 0;
}

/* --- Thunderbird: Mozilla's autoconfig, clientConfig version 1.1 --- */

static void tb_server(FILE *f, const char *kind, const char *type,
		      const struct server *s, bool address)
{
	fprintf(f,
		"    <%sServer type=\"%s\">\n"
		"      <hostname>%s</hostname>\n"
		"      <port>%u</port>\n"
		"      <socketType>%s</socketType>\n"
		"      <username>%s</username>\n"
		"      <authentication>password-cleartext</authentication>\n"
		"    </%sServer>\n",
		kind, type, s->host, s->port, s->tls ? "SSL" : "STARTTLS",
		address ? "%EMAILADDRESS%" : "%EMAILLOCALPART%", kind);
}

static void write_thunderbird(FILE *f, const struct ac *a)
{
	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<clientConfig version=\"1.1\">\n"
		"  <emailProvider id=\"%s\">\n"
		"    <domain>%s</domain>\n"
		"    <displayName>%s mail</displayName>\n"
		"    <displayShortName>%s</displayShortName>\n",
		a->domain, a->domain, a->domain, a->domain);
	if (a->imap.port != 0)
		tb_server(f, "incoming", "imap", &a->imap, a->address);
	/* In order of preference: implicit TLS first (RFC 8314 §3.3). */
	if (a->smtps.port != 0)
		tb_server(f, "outgoing", "smtp", &a->smtps, a->address);
	if (a->submission.port != 0)
		tb_server(f, "outgoing", "smtp", &a->submission, a->address);
	fprintf(f, "  </emailProvider>\n</clientConfig>\n");
}

/* --- Outlook: Autodiscover (POX), outlook responseschema 2006a --- */

static void ol_protocol(FILE *f, const char *type, const struct server *s)
{
	fprintf(f,
		"      <Protocol>\n"
		"        <Type>%s</Type>\n"
		"        <Server>%s</Server>\n"
		"        <Port>%u</Port>\n"
		"        <DomainRequired>off</DomainRequired>\n"
		"        <SPA>off</SPA>\n"
		"        <SSL>on</SSL>\n"
		"        <Encryption>%s</Encryption>\n"
		"        <AuthRequired>on</AuthRequired>\n"
		"%s"
		"      </Protocol>\n",
		type, s->host, s->port, s->tls ? "SSL" : "TLS",
		strcmp(type, "SMTP") == 0 ?
		"        <UsePOPAuth>off</UsePOPAuth>\n"
		"        <SMTPLast>off</SMTPLast>\n" : "");
}

static void write_outlook(FILE *f, const struct ac *a)
{
	/* One answer for every user: without LoginName Outlook logs in
	 * with the address the user typed. */
	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
		"autodiscover/responseschema/2006\">\n"
		"  <Response xmlns=\"http://schemas.microsoft.com/exchange/"
		"autodiscover/outlook/responseschema/2006a\">\n"
		"    <Account>\n"
		"      <AccountType>email</AccountType>\n"
		"      <Action>settings</Action>\n");
	if (a->imap.port != 0)
		ol_protocol(f, "IMAP", &a->imap);
	ol_protocol(f, "SMTP", a->smtps.port != 0 ? &a->smtps :
		    &a->submission);
	fprintf(f, "    </Account>\n  </Response>\n</Autodiscover>\n");
}

/* --- Apple: a configuration profile with a com.apple.mail.managed
 * payload (Device Management, "Mail") --- */

/* "mail.example.com" -> "com.example.mail" */
static void reverse_dns(const char *name, char *out, size_t size)
{
	const char *end = name + strlen(name);
	size_t o = 0;

	out[0] = '\0';
	while (end > name && o + 1 < size) {
		const char *dot = end;

		while (dot > name && dot[-1] != '.')
			dot--;
		o += (size_t)snprintf(out + o, size - o, "%s%.*s",
				      o > 0 ? "." : "", (int)(end - dot), dot);
		end = dot > name ? dot - 1 : name;
	}
}

static void write_apple(FILE *f, const struct ac *a)
{
	const struct server *out = a->smtps.port != 0 ? &a->smtps :
				   &a->submission;
	char name[600], top[37], mail[37];
	char id[300];

	snprintf(name, sizeof(name), "authrelay profile %s %s", a->domain,
		 out->host);
	uuid_v5(name, top);
	snprintf(name, sizeof(name), "authrelay mail %s %s", a->domain,
		 out->host);
	uuid_v5(name, mail);
	/* Reverse DNS of the domain, as Apple asks of identifiers. */
	reverse_dns(a->domain, id, sizeof(id));
	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
		"\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
		"<plist version=\"1.0\">\n"
		"<dict>\n"
		"\t<key>PayloadContent</key>\n"
		"\t<array>\n"
		"\t\t<dict>\n"
		"\t\t\t<key>EmailAccountDescription</key>\n"
		"\t\t\t<string>%s mail</string>\n"
		"\t\t\t<key>EmailAccountType</key>\n"
		"\t\t\t<string>EmailTypeIMAP</string>\n"
		"\t\t\t<key>IncomingMailServerAuthentication</key>\n"
		"\t\t\t<string>EmailAuthPassword</string>\n"
		"\t\t\t<key>IncomingMailServerHostName</key>\n"
		"\t\t\t<string>%s</string>\n"
		"\t\t\t<key>IncomingMailServerPortNumber</key>\n"
		"\t\t\t<integer>%u</integer>\n"
		"\t\t\t<key>IncomingMailServerUseSSL</key>\n"
		"\t\t\t<%s/>\n"
		"\t\t\t<key>OutgoingMailServerAuthentication</key>\n"
		"\t\t\t<string>EmailAuthPassword</string>\n"
		"\t\t\t<key>OutgoingMailServerHostName</key>\n"
		"\t\t\t<string>%s</string>\n"
		"\t\t\t<key>OutgoingMailServerPortNumber</key>\n"
		"\t\t\t<integer>%u</integer>\n"
		"\t\t\t<key>OutgoingMailServerUseSSL</key>\n"
		"\t\t\t<true/>\n"
		"\t\t\t<key>OutgoingPasswordSameAsIncomingPassword</key>\n"
		"\t\t\t<true/>\n"
		"\t\t\t<key>PayloadDisplayName</key>\n"
		"\t\t\t<string>%s mail</string>\n"
		"\t\t\t<key>PayloadIdentifier</key>\n"
		"\t\t\t<string>%s.authrelay.mail</string>\n"
		"\t\t\t<key>PayloadType</key>\n"
		"\t\t\t<string>com.apple.mail.managed</string>\n"
		"\t\t\t<key>PayloadUUID</key>\n"
		"\t\t\t<string>%s</string>\n"
		"\t\t\t<key>PayloadVersion</key>\n"
		"\t\t\t<integer>1</integer>\n"
		"\t\t</dict>\n"
		"\t</array>\n"
		"\t<key>PayloadDescription</key>\n"
		"\t<string>Mail account: incoming %s, outgoing %s (the user "
		"enters the address, user name and password)</string>\n"
		"\t<key>PayloadDisplayName</key>\n"
		"\t<string>%s mail</string>\n"
		"\t<key>PayloadIdentifier</key>\n"
		"\t<string>%s.authrelay</string>\n"
		"\t<key>PayloadRemovalDisallowed</key>\n"
		"\t<false/>\n"
		"\t<key>PayloadType</key>\n"
		"\t<string>Configuration</string>\n"
		"\t<key>PayloadUUID</key>\n"
		"\t<string>%s</string>\n"
		"\t<key>PayloadVersion</key>\n"
		"\t<integer>1</integer>\n"
		"</dict>\n"
		"</plist>\n",
		a->domain, a->imap.host, a->imap.port,
		a->imap.tls ? "true" : "false", out->host, out->port,
		a->domain, id, mail, a->imap.host, out->host, a->domain, id,
		top);
}

/* --- where to serve them --- */

static void write_nginx(FILE *f, const struct ac *a, const char *dir)
{
	fprintf(f,
		"# Thunderbird asks https://autoconfig.%s/mail/config-v1.1.xml"
		"?emailaddress=...\n"
		"# and https://%s/.well-known/autoconfig/mail/config-v1.1.xml;"
		"\n# Outlook POSTs to https://autodiscover.%s/autodiscover/"
		"autodiscover.xml.\n"
		"server {\n"
		"    listen 443 ssl;\n"
		"    server_name autoconfig.%s autodiscover.%s %s;\n"
		"    # ssl_certificate and ssl_certificate_key: a certificate "
		"for these names\n"
		"    location = /mail/config-v1.1.xml {\n"
		"        alias %s/mail/config-v1.1.xml;\n"
		"        default_type application/xml;\n"
		"    }\n"
		"    location = /.well-known/autoconfig/mail/config-v1.1.xml {\n"
		"        alias %s/mail/config-v1.1.xml;\n"
		"        default_type application/xml;\n"
		"    }\n"
		"    location ~* ^/autodiscover/autodiscover\\.xml$ {\n"
		"        # The answer is the same for every user: a POST gets "
		"the file too.\n"
		"        error_page 405 =200 $uri;\n"
		"        alias %s/autodiscover/autodiscover.xml;\n"
		"        default_type application/xml;\n"
		"    }\n",
		a->domain, a->domain, a->domain, a->domain, a->domain,
		a->domain, dir, dir, dir);
	if (a->imap.port != 0)
		fprintf(f,
			"    location = /apple/%s.mobileconfig {\n"
			"        alias %s/apple/%s.mobileconfig;\n"
			"        default_type application/x-apple-aspen-config;\n"
			"    }\n", a->domain, dir, a->domain);
	fprintf(f, "}\n");
}

static void write_apache(FILE *f, const struct ac *a, const char *dir)
{
	fprintf(f,
		"# Thunderbird asks https://autoconfig.%s/mail/config-v1.1.xml"
		"?emailaddress=...\n"
		"# and https://%s/.well-known/autoconfig/mail/config-v1.1.xml;"
		"\n# Outlook POSTs to https://autodiscover.%s/autodiscover/"
		"autodiscover.xml\n"
		"# (Apache serves a static file to a POST as well).\n"
		"<VirtualHost *:443>\n"
		"    ServerName autoconfig.%s\n"
		"    ServerAlias autodiscover.%s %s\n"
		"    # SSLEngine on, SSLCertificateFile, SSLCertificateKeyFile:"
		" a certificate for these names\n"
		"    Alias /mail/config-v1.1.xml %s/mail/config-v1.1.xml\n"
		"    Alias /.well-known/autoconfig/mail/config-v1.1.xml "
		"%s/mail/config-v1.1.xml\n"
		"    AliasMatch \"(?i)^/autodiscover/autodiscover\\.xml$\" "
		"%s/autodiscover/autodiscover.xml\n",
		a->domain, a->domain, a->domain, a->domain, a->domain,
		a->domain, dir, dir, dir);
	if (a->imap.port != 0)
		fprintf(f, "    Alias /apple/%s.mobileconfig "
			"%s/apple/%s.mobileconfig\n"
			"    <Files \"*.mobileconfig\">\n"
			"        ForceType application/x-apple-aspen-config\n"
			"    </Files>\n", a->domain, dir, a->domain);
	fprintf(f,
		"    <Directory %s>\n"
		"        Require all granted\n"
		"    </Directory>\n"
		"    <FilesMatch \"\\.xml$\">\n"
		"        ForceType application/xml\n"
		"    </FilesMatch>\n"
		"</VirtualHost>\n", dir);
}

static void listen_server(const struct config *cfg, enum listen_mode mode,
			  struct server *s)
{
	for (size_t i = 0; i < cfg->n_listen; i++) {
		if (cfg->listen[i].mode != mode)
			continue;
		snprintf(s->host, sizeof(s->host), "%s", cfg->hostname);
		if (!parse_port(cfg->listen[i].port, &s->port))
			s->port = 0;
		s->tls = mode == LISTEN_TLS;
		return;
	}
}

int autoconfig_run(const struct autoconfig_opts *o)
{
	struct config_errors errs = { 0 };
	struct config *cfg;
	struct ac a = { .domain = o->domain };
	char path[PATH_LEN], file[NAME_MAX_LEN + 20];
	int r = 0;
	FILE *f;

	if (!dns_name(o->domain)) {
		fprintf(stderr, "authrelay: --domain %s: not a domain name\n",
			o->domain);
		return 1;
	}
	if (o->imap != NULL && !parse_imap(o->imap, &a.imap)) {
		fprintf(stderr, "authrelay: --imap %s: want HOST[:PORT]\n",
			o->imap);
		return 1;
	}
	if (strlen(o->dir) > PATH_LEN - 100 || o->dir[0] == '\0' ||
	    strpbrk(o->dir, " \t\n\r\"';{}$\\") != NULL) {
		fprintf(stderr, "authrelay: --autoconfig %s: want a directory "
			"path without spaces or quotes\n", o->dir);
		return 1;
	}
	cfg = config_load(o->config_path, false, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	config_errors_clear(&errs);
	if (cfg == NULL)
		return 1;
	if (!dns_name(cfg->hostname)) {
		fprintf(stderr, "authrelay: [server] hostname %s: clients need "
			"a DNS name\n", cfg->hostname);
		config_free(&cfg);
		return 1;
	}
	listen_server(cfg, LISTEN_TLS, &a.smtps);
	listen_server(cfg, LISTEN_STARTTLS, &a.submission);
	a.address = o->login == AUTOCONFIG_LOGIN_ADDRESS ||
		    (o->login == AUTOCONFIG_LOGIN_AUTO &&
		     cfg->backend == AUTH_BACKEND_LDAP &&
		     ldap_login_is_address(cfg->ldap_user_dn_template != NULL ?
					   cfg->ldap_user_dn_template :
					   cfg->ldap_user_filter));
	config_free(&cfg);
	if (a.smtps.port == 0 && a.submission.port == 0) {
		fprintf(stderr, "authrelay: no listen entry to tell clients "
			"about\n");
		return 1;
	}
	if (mkdir(o->dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "authrelay: %s: %s\n", o->dir, strerror(errno));
		return 1;
	}

	if ((f = open_out(o->dir, "mail", "config-v1.1.xml", path,
			  sizeof(path))) == NULL)
		return 1;
	write_thunderbird(f, &a);
	r |= close_out(f, path);
	if ((f = open_out(o->dir, "autodiscover", "autodiscover.xml", path,
			  sizeof(path))) == NULL)
		return 1;
	write_outlook(f, &a);
	r |= close_out(f, path);
	if (a.imap.port != 0) {
		snprintf(file, sizeof(file), "%s.mobileconfig", a.domain);
		if ((f = open_out(o->dir, "apple", file, path,
				  sizeof(path))) == NULL)
			return 1;
		write_apple(f, &a);
		r |= close_out(f, path);
	} else {
		fprintf(stderr, "authrelay: no Apple profile: its mail "
			"payload needs the incoming server (--imap HOST)\n");
	}
	if ((f = open_out(o->dir, "", "nginx.conf", path,
			  sizeof(path))) == NULL)
		return 1;
	write_nginx(f, &a, o->dir);
	r |= close_out(f, path);
	if ((f = open_out(o->dir, "", "apache.conf", path,
			  sizeof(path))) == NULL)
		return 1;
	write_apache(f, &a, o->dir);
	r |= close_out(f, path);
	return r < 0 ? 1 : 0;
}
