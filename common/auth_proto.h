/* The request/reply protocol between the daemon and its auth workers.
 *
 * One datagram per message on a SOCK_SEQPACKET socketpair, at most
 * AUTH_PROTO_MAX octets. Layout (all integers big-endian):
 *
 *   u8  version (AUTH_PROTO_VERSION)
 *   u8  type (AUTH_MSG_*)
 *   u32 id      (chosen by the daemon, echoed in the reply)
 *   then fields, each: u8 tag, u16 length, length octets
 *
 * Request fields: USER, PASSWORD, CLIENT_IP (each exactly once).
 * Reply fields: RESULT (1 octet, enum auth_result, exactly once),
 * USER (canonical name, once when OK), REASON (for the log, at most once),
 * ADDRESS (repeatable, at most AUTH_MAX_ADDRESSES), GROUP (repeatable, at
 * most AUTH_MAX_GROUPS: the groups named in [policy] group_rate and
 * group_recipient_rate that the user is in, spelt as in the config).
 * Unknown tags, repeated single fields, a missing required field, a
 * length past the end, or trailing octets make the message invalid.
 * Strings must not contain NUL. */
#ifndef AUTHRELAY_AUTH_PROTO_H
#define AUTHRELAY_AUTH_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AUTH_PROTO_VERSION 1
#define AUTH_PROTO_MAX 16384

#define AUTH_USER_MAX 256	/* octets, without NUL */
#define AUTH_PASSWORD_MAX 1024
#define AUTH_IP_MAX 64
#define AUTH_REASON_MAX 256
#define AUTH_ADDRESS_MAX 320
#define AUTH_MAX_ADDRESSES 32
#define AUTH_GROUP_MAX 256
#define AUTH_MAX_GROUPS 16

enum auth_msg_type { AUTH_MSG_REQUEST = 1, AUTH_MSG_REPLY = 2 };
enum auth_tag { AUTH_TAG_USER = 1, AUTH_TAG_PASSWORD = 2,
		AUTH_TAG_CLIENT_IP = 3, AUTH_TAG_RESULT = 4,
		AUTH_TAG_REASON = 5, AUTH_TAG_ADDRESS = 6,
		AUTH_TAG_GROUP = 7 };

/* Three-state result: OK (235), PERMFAIL (535), TEMPFAIL (454). */
enum auth_result { AUTH_OK = 0, AUTH_PERMFAIL = 1, AUTH_TEMPFAIL = 2 };

/* The REASON of a PERMFAIL for a right password of a user outside
 * [auth] require_group: the daemon counts those apart (metrics.h). */
#define AUTH_REASON_NOT_IN_GROUP "not in a required group"

struct auth_request {
	uint32_t id;
	char user[AUTH_USER_MAX + 1];
	char password[AUTH_PASSWORD_MAX + 1];
	char client_ip[AUTH_IP_MAX + 1];
};

struct auth_reply {
	uint32_t id;
	enum auth_result result;
	char user[AUTH_USER_MAX + 1];		/* canonical name when OK */
	char reason[AUTH_REASON_MAX + 1];	/* for the log, never the client */
	char address[AUTH_MAX_ADDRESSES][AUTH_ADDRESS_MAX + 1];
	size_t n_address;
	char group[AUTH_MAX_GROUPS][AUTH_GROUP_MAX + 1];
	size_t n_group;
};

/* Encode into buf (size >= AUTH_PROTO_MAX); returns the length, or -1 if a
 * field is too long or contains NUL. */
ssize_t auth_request_encode(const struct auth_request *req, unsigned char *buf,
			    size_t size);
ssize_t auth_reply_encode(const struct auth_reply *rep, unsigned char *buf,
			  size_t size);
/* Decode; 0 on success, -1 if the message is invalid (see above). On
 * failure the output is wiped. */
int auth_request_decode(const unsigned char *buf, size_t len,
			struct auth_request *req);
int auth_reply_decode(const unsigned char *buf, size_t len,
		      struct auth_reply *rep);

#endif
