/* A client connection's I/O: a non-blocking socket, optionally wrapped in
 * TLS, with a bounded line reader for input, a bounded output buffer and
 * one deadline. The SMTP session above it sees lines and bytes; it never
 * touches the socket or OpenSSL. */
#ifndef AUTHRELAY_CONN_H
#define AUTHRELAY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <systemd/sd-event.h>

#include "line_reader.h"

struct conn;

enum conn_event {
	CONN_EV_INPUT,		/* new input in the line reader */
	CONN_EV_FLUSHED,	/* the output buffer became empty */
	CONN_EV_TLS_READY,	/* handshake done */
	CONN_EV_TIMEOUT,	/* the deadline passed */
	CONN_EV_CLOSED,		/* peer closed or I/O error; conn is dead */
	CONN_EV_PROXY_HEADER,	/* the PROXY header was read */
	CONN_EV_PROXY_FAILED,	/* none, or a bad one; nothing more is read */
};

typedef void conn_callback(struct conn *c, enum conn_event ev, void *ctx);

/* Takes ownership of fd (non-blocking, close-on-exec). */
struct conn *conn_new(sd_event *event, int fd, size_t in_cap, size_t max_line,
		      conn_callback *cb, void *ctx);
/* Closes the socket at once (no TLS close_notify flush beyond a try). */
void conn_free(struct conn **c);

struct line_reader *conn_input(struct conn *c);
/* The input buffer's size (bigger for DATA: fewer, larger reads);
 * line_reader_set_size() says when it takes effect. */
void conn_set_input_size(struct conn *c, size_t size);

/* Queue output; bounded by the caller (replies are small and a session
 * stops reading while output is pending past conn_output_full()). A
 * hard cap behind that (CONN_OUTPUT_MAX in conn.c) aborts the
 * connection rather than let the buffer grow. */
void conn_write(struct conn *c, const void *data, size_t len);
void conn_printf(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
size_t conn_output_pending(const struct conn *c);
bool conn_output_full(const struct conn *c);

/* Stop / resume reading from the socket (backpressure, async work). */
void conn_set_reading(struct conn *c, bool on);

/* PROXY protocol (proxy_proto.h), before anything else on a new
 * connection: read exactly the header, leaving what follows (a TLS
 * ClientHello) unread. CONN_EV_PROXY_HEADER follows, with the result in
 * conn_proxy_result(), or CONN_EV_PROXY_FAILED with the reason in
 * conn_proxy_error() (then nothing more is read; output may still be
 * queued and closed after). The callback may free c. */
struct proxy_proto_result;
void conn_expect_proxy_header(struct conn *c);
const struct proxy_proto_result *conn_proxy_result(const struct conn *c);
const char *conn_proxy_error(const struct conn *c);

/* Flush pending plaintext output, then run a TLS server handshake. Input
 * buffered so far is dropped. CONN_EV_TLS_READY or CONN_EV_CLOSED
 * follows. */
void conn_start_tls(struct conn *c, SSL_CTX *ctx);
/* The same as a TLS client (to a smarthost): SNI set to host when it is a
 * name; with verify, the peer's certificate must chain to the context's
 * trust store and match host (name or IP address), or the handshake
 * fails. */
void conn_start_tls_client(struct conn *c, SSL_CTX *ctx, const char *host,
			   bool verify);
bool conn_is_tls(const struct conn *c);
/* Why the TLS handshake failed ("certificate verification: ...",
 * OpenSSL's reason, "connection closed (eof)"); NULL if it has not.
 * Nothing is logged here: the session (client side) and the relay
 * (smarthost side) log it with whose connection it was. */
const char *conn_tls_error(const struct conn *c);
/* "TLSv1.3", "TLS_AES_256_GCM_SHA384"; NULL before TLS. */
const char *conn_tls_version(const struct conn *c);
const char *conn_tls_cipher(const struct conn *c);

/* Deadline relative to now; 0 disarms. CONN_EV_TIMEOUT when it passes. */
void conn_set_deadline(struct conn *c, uint64_t usec);

/* Close once the output is flushed (after a 221 or 421). CONN_EV_CLOSED
 * follows. */
void conn_close_after_flush(struct conn *c);
/* Close without sending what is queued; CONN_EV_CLOSED follows from the
 * event loop (safe to call from within a callback). */
void conn_abort(struct conn *c);

#endif
