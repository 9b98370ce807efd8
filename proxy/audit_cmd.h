/* The command an audit record names (the "command" of a 4xx/5xx reply
 * record): what the client sent, minus anything that could be a secret.
 * Pure: no I/O, no allocation. */
#ifndef AUTHRELAY_AUDIT_CMD_H
#define AUTHRELAY_AUDIT_CMD_H

#include <stddef.h>

/* For a command not known by name (which may be a base64 AUTH answer a
 * client sent after its AUTH was refused). */
#define AUDIT_CMD_UNRECOGNIZED "(unrecognized)"

/* line[0..len) (no CRLF) -> out (NUL-terminated, cut to size - 1):
 * - AUTH: "AUTH" and the mechanism name (RFC 4422 §3.1: 1 to 20 of
 *   A-Z 0-9 - _), upper-cased; never the initial response;
 * - any other verb we know (smtp_cmd.h): the whole line, recipient and
 *   sender addresses included, control octets as '?';
 * - anything else: AUDIT_CMD_UNRECOGNIZED, nothing of the line.
 * The verb ends at SP or HT. Returns the length written. */
size_t audit_cmd_text(const char *line, size_t len, char *out, size_t size);

#endif
