#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>

#include "check_line.h"

#define CHECK_LINE_MAX 1024

static unsigned failures;

void check_line(enum check_level level, const char *fmt, ...)
{
	static const char *const names[] = { "ok  ", "warn", "FAIL" };
	char line[CHECK_LINE_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One check, one line, whatever a server put in its message. */
	for (char *p = line; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			*p = '?';
	if (level == CHECK_FAIL)
		failures++;
	printf("%s %s\n", names[level], line);
	fflush(stdout);
}

unsigned check_failures(void)
{
	return failures;
}
