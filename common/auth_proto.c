/* The daemon <-> auth worker protocol; the wire format is in auth_proto.h. */
#include "autoconf.h"

#include <stdbool.h>
#include <string.h>

#include "auth_proto.h"

#define HEADER_LEN 6		/* version, type, id */
#define FIELD_HEADER_LEN 3	/* tag, length */

/* Encoding: pos never passes size; a field that does not fit fails the
 * whole message. */
struct enc {
	unsigned char *buf;
	size_t size;
	size_t pos;
};

static int enc_header(struct enc *e, enum auth_msg_type type, uint32_t id)
{
	if (e->size < HEADER_LEN)
		return -1;
	e->buf[0] = AUTH_PROTO_VERSION;
	e->buf[1] = (unsigned char)type;
	e->buf[2] = (unsigned char)(id >> 24);
	e->buf[3] = (unsigned char)(id >> 16);
	e->buf[4] = (unsigned char)(id >> 8);
	e->buf[5] = (unsigned char)id;
	e->pos = HEADER_LEN;
	return 0;
}

static int enc_field(struct enc *e, enum auth_tag tag, const void *data,
		     size_t len)
{
	if (len > UINT16_MAX || e->size - e->pos < FIELD_HEADER_LEN ||
	    e->size - e->pos - FIELD_HEADER_LEN < len)
		return -1;
	e->buf[e->pos] = (unsigned char)tag;
	e->buf[e->pos + 1] = (unsigned char)(len >> 8);
	e->buf[e->pos + 2] = (unsigned char)len;
	memcpy(e->buf + e->pos + FIELD_HEADER_LEN, data, len);
	e->pos += FIELD_HEADER_LEN + len;
	return 0;
}

/* s lives in an array of max + 1 octets: a string with no NUL in it is
 * longer than max (and is not a string). */
static int enc_string(struct enc *e, enum auth_tag tag, const char *s,
		      size_t max)
{
	size_t len = strnlen(s, max + 1);

	if (len > max)
		return -1;
	return enc_field(e, tag, s, len);
}

/* The length, or -1 with whatever was written wiped: it may hold a
 * password. */
static ssize_t enc_finish(struct enc *e, int ret)
{
	if (ret < 0) {
		explicit_bzero(e->buf, e->pos);
		return -1;
	}
	return (ssize_t)e->pos;
}

ssize_t auth_request_encode(const struct auth_request *req, unsigned char *buf,
			    size_t size)
{
	struct enc e = { buf, size, 0 };
	int ret;

	ret = enc_header(&e, AUTH_MSG_REQUEST, req->id);
	if (ret == 0)
		ret = enc_string(&e, AUTH_TAG_USER, req->user, AUTH_USER_MAX);
	if (ret == 0)
		ret = enc_string(&e, AUTH_TAG_PASSWORD, req->password,
				 AUTH_PASSWORD_MAX);
	if (ret == 0)
		ret = enc_string(&e, AUTH_TAG_CLIENT_IP, req->client_ip,
				 AUTH_IP_MAX);
	return enc_finish(&e, ret);
}

static bool result_valid(unsigned v)
{
	return v == AUTH_OK || v == AUTH_PERMFAIL || v == AUTH_TEMPFAIL;
}

/* Whatever encodes must decode: the encoder refuses what the decoder
 * would (see reply_check below). */
ssize_t auth_reply_encode(const struct auth_reply *rep, unsigned char *buf,
			  size_t size)
{
	struct enc e = { buf, size, 0 };
	unsigned char result = (unsigned char)rep->result;
	bool ok = rep->result == AUTH_OK;
	int ret;

	if (!result_valid((unsigned)rep->result) ||
	    rep->n_address > AUTH_MAX_ADDRESSES ||
	    rep->n_group > AUTH_MAX_GROUPS ||
	    ok != (rep->user[0] != '\0'))
		return -1;
	ret = enc_header(&e, AUTH_MSG_REPLY, rep->id);
	if (ret == 0)
		ret = enc_field(&e, AUTH_TAG_RESULT, &result, 1);
	if (ret == 0 && ok)
		ret = enc_string(&e, AUTH_TAG_USER, rep->user, AUTH_USER_MAX);
	if (ret == 0 && rep->reason[0] != '\0')
		ret = enc_string(&e, AUTH_TAG_REASON, rep->reason,
				 AUTH_REASON_MAX);
	for (size_t i = 0; ret == 0 && i < rep->n_address; i++) {
		if (rep->address[i][0] == '\0')
			ret = -1;
		else
			ret = enc_string(&e, AUTH_TAG_ADDRESS, rep->address[i],
					 AUTH_ADDRESS_MAX);
	}
	for (size_t i = 0; ret == 0 && i < rep->n_group; i++) {
		if (rep->group[i][0] == '\0')
			ret = -1;
		else
			ret = enc_string(&e, AUTH_TAG_GROUP, rep->group[i],
					 AUTH_GROUP_MAX);
	}
	return enc_finish(&e, ret);
}

/* Decoding. */
struct field {
	unsigned tag;
	const unsigned char *data;
	size_t len;
};

static int dec_header(const unsigned char *buf, size_t len,
		      enum auth_msg_type type, uint32_t *id_r)
{
	if (len < HEADER_LEN || len > AUTH_PROTO_MAX)
		return -1;
	if (buf[0] != AUTH_PROTO_VERSION || buf[1] != type)
		return -1;
	*id_r = (uint32_t)buf[2] << 24 | (uint32_t)buf[3] << 16 |
		(uint32_t)buf[4] << 8 | (uint32_t)buf[5];
	return 0;
}

/* The field at *pos; a field header cut short or a length past the end
 * is invalid. Octets after the last field are a field cut short, so
 * trailing garbage cannot go unnoticed. */
static int dec_field(const unsigned char *buf, size_t len, size_t *pos,
		     struct field *f)
{
	if (len - *pos < FIELD_HEADER_LEN)
		return -1;
	f->tag = buf[*pos];
	f->len = (size_t)buf[*pos + 1] << 8 | (size_t)buf[*pos + 2];
	if (len - *pos - FIELD_HEADER_LEN < f->len)
		return -1;
	f->data = buf + *pos + FIELD_HEADER_LEN;
	*pos += FIELD_HEADER_LEN + f->len;
	return 0;
}

/* out has max + 1 octets. */
static int dec_string(const struct field *f, char *out, size_t max)
{
	if (f->len > max || memchr(f->data, '\0', f->len) != NULL)
		return -1;
	memcpy(out, f->data, f->len);
	out[f->len] = '\0';
	return 0;
}

/* A single field seen twice is invalid. */
static int dec_once(const struct field *f, bool *seen, char *out, size_t max)
{
	if (*seen)
		return -1;
	*seen = true;
	return dec_string(f, out, max);
}

static int request_decode(const unsigned char *buf, size_t len,
			  struct auth_request *req)
{
	bool have_user = false, have_password = false, have_ip = false;
	size_t pos = HEADER_LEN;
	struct field f;
	int ret;

	if (dec_header(buf, len, AUTH_MSG_REQUEST, &req->id) < 0)
		return -1;
	while (pos < len) {
		if (dec_field(buf, len, &pos, &f) < 0)
			return -1;
		switch (f.tag) {
		case AUTH_TAG_USER:
			ret = dec_once(&f, &have_user, req->user,
				       AUTH_USER_MAX);
			break;
		case AUTH_TAG_PASSWORD:
			ret = dec_once(&f, &have_password, req->password,
				       AUTH_PASSWORD_MAX);
			break;
		case AUTH_TAG_CLIENT_IP:
			ret = dec_once(&f, &have_ip, req->client_ip,
				       AUTH_IP_MAX);
			break;
		default:
			ret = -1;
			break;
		}
		if (ret < 0)
			return -1;
	}
	return have_user && have_password && have_ip ? 0 : -1;
}

int auth_request_decode(const unsigned char *buf, size_t len,
			struct auth_request *req)
{
	memset(req, 0, sizeof(*req));
	if (request_decode(buf, len, req) < 0) {
		explicit_bzero(req, sizeof(*req));
		return -1;
	}
	return 0;
}

static int reply_decode(const unsigned char *buf, size_t len,
			struct auth_reply *rep)
{
	bool have_result = false, have_user = false, have_reason = false;
	size_t pos = HEADER_LEN;
	struct field f;
	int ret;

	if (dec_header(buf, len, AUTH_MSG_REPLY, &rep->id) < 0)
		return -1;
	while (pos < len) {
		if (dec_field(buf, len, &pos, &f) < 0)
			return -1;
		switch (f.tag) {
		case AUTH_TAG_RESULT:
			ret = -1;
			if (!have_result && f.len == 1 &&
			    result_valid(f.data[0])) {
				rep->result = (enum auth_result)f.data[0];
				ret = 0;
			}
			have_result = true;
			break;
		case AUTH_TAG_USER:
			ret = dec_once(&f, &have_user, rep->user,
				       AUTH_USER_MAX);
			break;
		case AUTH_TAG_REASON:
			ret = dec_once(&f, &have_reason, rep->reason,
				       AUTH_REASON_MAX);
			break;
		case AUTH_TAG_ADDRESS:
			ret = -1;
			if (rep->n_address < AUTH_MAX_ADDRESSES && f.len > 0)
				ret = dec_string(&f,
						 rep->address[rep->n_address++],
						 AUTH_ADDRESS_MAX);
			break;
		case AUTH_TAG_GROUP:
			ret = -1;
			if (rep->n_group < AUTH_MAX_GROUPS && f.len > 0)
				ret = dec_string(&f, rep->group[rep->n_group++],
						 AUTH_GROUP_MAX);
			break;
		default:
			ret = -1;
			break;
		}
		if (ret < 0)
			return -1;
	}
	if (!have_result)
		return -1;
	/* The canonical name comes with OK and only with OK: the daemon
	 * must never see a name it could mistake for an identity. */
	if (rep->result == AUTH_OK)
		return have_user && rep->user[0] != '\0' ? 0 : -1;
	return have_user ? -1 : 0;
}

int auth_reply_decode(const unsigned char *buf, size_t len,
		      struct auth_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	if (reply_decode(buf, len, rep) < 0) {
		explicit_bzero(rep, sizeof(*rep));
		/* Wiped, AUTH_OK would be 0: a caller that forgets to check
		 * must see 454, never 235. */
		rep->result = AUTH_TEMPFAIL;
		return -1;
	}
	return 0;
}
