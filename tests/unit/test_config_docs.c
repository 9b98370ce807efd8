/* One source of truth for the configuration keys: every key the parser
 * knows (the key table of common/config.c) is documented in
 * authrelay.conf(5) (an ".It Cm KEY" entry under ".Ss [SECTION]") and
 * listed in contrib/authrelay.conf (a "KEY =" or "#KEY =" line under
 * [SECTION]), and neither names a key the parser does not know. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "test.h"

#define DOC_KEYS_MAX 512
#define NAME_MAX_LEN 64
#define LINE_LEN 4200

struct doc_key {
	char section[NAME_MAX_LEN];
	char name[NAME_MAX_LEN];
	unsigned line;
};

struct doc {
	const char *label;	/* path as the source tree names it */
	const char *entry;	/* what an entry looks like there, and */
	const char *where;	/* where it goes (%s: the section) */
	struct doc_key keys[DOC_KEYS_MAX];
	size_t n;
};

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Copies the [a-z0-9_] word at s into out; returns its length. */
static size_t word(const char *s, char out[NAME_MAX_LEN])
{
	size_t n = 0;

	while (is_name_char(s[n]) && n < NAME_MAX_LEN - 1) {
		out[n] = s[n];
		n++;
	}
	out[n] = '\0';
	return n;
}

static void add(struct doc *d, const char *section, const char *name,
		unsigned line)
{
	if (d->n == DOC_KEYS_MAX) {
		CHECK(0, "%s: more than %d keys", d->label, DOC_KEYS_MAX);
		return;
	}
	snprintf(d->keys[d->n].section, NAME_MAX_LEN, "%s", section);
	snprintf(d->keys[d->n].name, NAME_MAX_LEN, "%s", name);
	d->keys[d->n++].line = line;
}

/* man: ".Ss [section]" then ".It Cm key ..." entries.
 * conf: "[section]" then "key =" or "#key =" lines. */
static int read_doc(struct doc *d, const char *path, bool man)
{
	char buf[LINE_LEN], section[NAME_MAX_LEN] = "", name[NAME_MAX_LEN];
	const char *sec_head = man ? ".Ss [" : "[";
	const char *key_head = man ? ".It Cm " : "";
	unsigned line = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		CHECK(0, "%s: cannot open", path);
		return -1;
	}
	while (fgets(buf, sizeof(buf), f) != NULL) {
		const char *s = buf;
		size_t n;

		line++;
		if (strncmp(s, sec_head, strlen(sec_head)) == 0) {
			word(s + strlen(sec_head), section);
			continue;
		}
		if (man && (strncmp(s, ".Sh ", 4) == 0))
			section[0] = '\0';
		if (section[0] == '\0' ||
		    strncmp(s, key_head, strlen(key_head)) != 0)
			continue;
		s += strlen(key_head);
		if (!man && *s == '#')
			s++;
		n = word(s, name);
		if (n == 0 || (!man && strncmp(s + n, " =", 2) != 0))
			continue;
		add(d, section, name, line);
	}
	fclose(f);
	return 0;
}

static bool documents(const struct doc *d, const char *section,
		      const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->keys[i].section, section) == 0 &&
		    strcmp(d->keys[i].name, name) == 0)
			return true;
	return false;
}

static bool parser_knows(const char *section, const char *name)
{
	const char *s, *k;

	for (size_t i = 0; (k = config_key_at(i, &s)) != NULL; i++)
		if (strcmp(s, section) == 0 && strcmp(k, name) == 0)
			return true;
	return false;
}

static void compare(const struct doc *d)
{
	const char *section, *name;
	size_t n = 0;

	for (size_t i = 0; (name = config_key_at(i, &section)) != NULL; i++) {
		n++;
		CHECK(documents(d, section, name), "%s: key [%s] %s is "
		      "missing: the parser knows it (common/config.c key "
		      "table); add \"%s%s%s\" under \"%s%s]\"", d->label,
		      section, name, d->entry, name,
		      d->where[0] == '.' ? " No = Ar ..." : " = DEFAULT",
		      d->where, section);
	}
	CHECK(n > 50, "the parser's key table: got %zu keys, want more than "
	      "50", n);
	for (size_t i = 0; i < d->n; i++)
		CHECK(parser_knows(d->keys[i].section, d->keys[i].name),
		      "%s:%u: key [%s] %s is documented but the parser does "
		      "not know it (common/config.c key table)", d->label,
		      d->keys[i].line, d->keys[i].section, d->keys[i].name);
}

int main(void)
{
	static struct doc man = { "doc/authrelay.conf.5", ".It Cm ", ".Ss [",
				  { { "", "", 0 } }, 0 };
	static struct doc conf = { "contrib/authrelay.conf", "#", "[",
				   { { "", "", 0 } }, 0 };

	if (read_doc(&man, SRCDIR "/../../doc/authrelay.conf.5", true) == 0)
		compare(&man);
	if (read_doc(&conf, SRCDIR "/../../contrib/authrelay.conf", false) == 0)
		compare(&conf);
	return test_done("test_config_docs");
}
