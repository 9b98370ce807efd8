/* Pipelining towards the smarthost (RFC 2920). A client that pipelines
 * MAIL, RCPTs and DATA gets them relayed the same way when the smarthost
 * offers PIPELINING: each command goes upstream as soon as it is read,
 * so one turn of the loop writes the whole group in one write, and the
 * replies come back one per command, in order.
 *
 * s->pending is the oldest command waiting for its smarthost reply (as
 * without pipelining); the queue here holds what follows it: the later
 * upstream commands, and the replies of ours (a refused RCPT, a rate
 * limit) to commands that came after them, held so that the client
 * reads every reply in the order of its commands (RFC 2920 §3.1). */
#include "autoconf.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "line_reader.h"
#include "shared_state.h"
#include "smtp_session.h"
#include "smtp_session_int.h"
#include "xalloc.h"

/* Commands and held replies behind s->pending; past this the session
 * waits for replies before it reads on. */
#define PIPE_MAX 32

struct pipe_entry {
	enum relay_pending p;	/* P_NONE: a held reply of ours */
	char *text;		/* the held reply with CRLF, or the RCPT path */
	size_t len;
	bool close;		/* a held session_close(), after the 421 */
};

struct smtp_pipe {
	struct pipe_entry e[PIPE_MAX];
	unsigned head, n;
	enum relay_pending last;	/* the newest upstream command */
	bool closing;			/* a close is held: read no more */
};

void smtp_pipe_free(struct smtp_session *s)
{
	struct smtp_pipe *q = s->pipe;

	if (q == NULL)
		return;
	for (unsigned i = 0; i < q->n; i++)
		free(q->e[(q->head + i) % PIPE_MAX].text);
	free(q);
	s->pipe = NULL;
}

static void push(struct smtp_session *s, enum relay_pending p,
		 const char *text, size_t len)
{
	struct smtp_pipe *q = s->pipe;
	struct pipe_entry *e;

	if (q == NULL)
		q = s->pipe = xcalloc(1, sizeof(*q));
	assert(q->n < PIPE_MAX);
	e = &q->e[(q->head + q->n++) % PIPE_MAX];
	e->p = p;
	e->len = len;
	e->text = xmalloc(len + 1);
	memcpy(e->text, text, len);
	e->text[len] = '\0';
	e->close = false;
	if (p != P_NONE)
		q->last = p;
}

void smtp_pipe_expect(struct smtp_session *s, enum relay_pending p)
{
	const char *path = p == P_RCPT ? s->tx->rcpt.path : "";

	if (s->pending == P_NONE) {
		s->pending = p;
		s->state = S_RELAY_WAIT;
		if (s->pipe != NULL)
			s->pipe->last = p;
		return;
	}
	push(s, p, path, strlen(path));
}

bool smtp_pipe_hold(struct smtp_session *s, const char *reply, size_t len)
{
	if (!s->pipe_reading || s->pending == P_NONE)
		return false;
	push(s, P_NONE, reply, len);
	return true;
}

/* The bad-command limit's 421 (session_reply_error) is held behind the
 * replies still to come, and so must the close that follows it: closing
 * now would drop them, and the 421 with them, where one command at a
 * time the client reads them all. */
bool smtp_pipe_hold_close(struct smtp_session *s)
{
	if (!smtp_pipe_hold(s, "", 0))
		return false;
	s->pipe->e[(s->pipe->head + s->pipe->n - 1) % PIPE_MAX].close = true;
	s->pipe->closing = true;
	return true;
}

/* The next buffered line starts with this command word. */
static bool next_is(struct line_reader *lr, const char *verb, size_t n)
{
	size_t len;
	const char *buf = line_reader_peek(lr, &len);

	return len > n && strncasecmp(buf, verb, n) == 0 &&
	       (buf[n] == ' ' || buf[n] == '\r');
}

/* The next buffered line is "DATA" alone. One with arguments is
 * refused by the command gate with 501, or with 554/503 when no
 * recipient was accepted: which, only the replies still to come tell,
 * so it waits for them. */
static bool bare_data_next(struct line_reader *lr)
{
	size_t len;
	const char *buf = line_reader_peek(lr, &len);

	return len >= 6 && strncasecmp(buf, "DATA\r\n", 6) == 0;
}

bool smtp_pipe_can_read(struct smtp_session *s)
{
	struct line_reader *lr = conn_input(s->conn);
	enum relay_pending last = s->pipe != NULL && s->pipe->n > 0 ?
				  s->pipe->last : s->pending;

	if (s->state != S_RELAY_WAIT || s->relay == NULL || s->tx == NULL ||
	    !relay_pipelining(s->relay))
		return false;
	/* A rate check through Redis answers later: one command at a time
	 * then, so that a shared-state wait never overlaps a relay wait. */
	if (shared_state_enabled(s->host.shared))
		return false;
	/* RFC 2920 §3.1: MAIL and RCPT may be followed by more; DATA
	 * ends the group. */
	if (last != P_MAIL && last != P_MAIL_LATE && last != P_RCPT)
		return false;
	/* One command read may hold three: its reply, the bad-command
	 * limit's 421 and the close (smtp_pipe_hold_close). */
	if (s->pipe != NULL && (s->pipe->n >= PIPE_MAX - 3 ||
				s->pipe->closing))
		return false;
	/* At max_recipients only while counting those still waiting for
	 * the smarthost: a RCPT read now would get 452 where, one at a
	 * time, it would have found room after a refusal. It waits for
	 * those replies, so that pipelining changes no reply. */
	if (next_is(lr, "RCPT", 4) &&
	    TX_RCPTS(s->tx) >= s->cfg->max_recipients &&
	    s->tx->n_rcpt < s->cfg->max_recipients)
		return false;
	return next_is(lr, "RCPT", 4) || bare_data_next(lr);
}

void smtp_pipe_advance(struct smtp_session *s)
{
	struct smtp_pipe *q = s->pipe;

	while (q != NULL && q->n > 0 && s->pending == P_NONE) {
		struct pipe_entry *e = &q->e[q->head];

		q->head = (q->head + 1) % PIPE_MAX;
		q->n--;
		if (e->close) {
			session_close(s);
		} else if (e->p == P_NONE) {
			conn_write(s->conn, e->text, e->len);
		} else {
			s->pending = e->p;
			s->state = S_RELAY_WAIT;
			if (e->p == P_RCPT && s->tx != NULL)
				snprintf(s->tx->rcpt.path,
					 sizeof(s->tx->rcpt.path), "%s",
					 e->text);
		}
		free(e->text);
		e->text = NULL;
	}
	if (q != NULL && q->n == 0)
		smtp_pipe_free(s);
}

unsigned smtp_pipe_fail(struct smtp_session *s, const char *reply)
{
	struct smtp_pipe *q = s->pipe;
	unsigned upstream = 0;
	bool close = false;

	for (unsigned i = 0; q != NULL && i < q->n; i++) {
		struct pipe_entry *e = &q->e[(q->head + i) % PIPE_MAX];

		if (e->close) {
			close = true;
		} else if (e->p == P_NONE) {
			conn_write(s->conn, e->text, e->len);
		} else {
			conn_write(s->conn, reply, strlen(reply));
			upstream++;
		}
	}
	smtp_pipe_free(s);
	if (close)
		session_close(s);
	return upstream;
}
