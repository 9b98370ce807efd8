/* Inside the SMTP session: the state shared by its parts, smtp_session.c
 * (life cycle, the command table, dispatch), smtp_auth.c (AUTH) and
 * smtp_tx.c (the mail transaction and its data). Nothing outside these
 * files includes this header. */
#ifndef AUTHRELAY_SMTP_SESSION_INT_H
#define AUTHRELAY_SMTP_SESSION_INT_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "audit.h"
#include "auth_cache.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "relay.h"
#include "run_queue.h"
#include "sasl.h"
#include "shared_state.h"
#include "smtp_cmd.h"

/* Comes after smtp_session.h, whose types it uses: the two are one
 * module, not two that include each other. */
#ifndef AUTHRELAY_SMTP_SESSION_H
#error "include smtp_session.h before smtp_session_int.h"
#endif

/* RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with CRLF;
 * like every submission server we take up to 1000 (the text line limit,
 * §4.5.3.1.6). */
#define SMTP_CMD_LINE_MAX 998
/* RFC 4954 §4: AUTH lines may be far longer (12288 recommended); ours
 * carry at most a 256-octet name and a 1024-octet password, so 4096
 * bounds every valid one. */
#define SMTP_AUTH_LINE_MAX 4096
/* The client connection's input buffer, and its size during DATA: four
 * full TLS records (RFC 8446 §5.1: 2^14 octets) per read turn, and one
 * data filter pass and one upstream write for all of them. */
#define SESSION_INPUT_BUF (SMTP_AUTH_LINE_MAX + 256)
#define SESSION_DATA_BUF (64 * 1024)

/* A command as the audit records name it: a RCPT or MAIL line whole
 * (RFC 5321 §4.5.3.1.4: 512 octets), a longer one cut. */
#define SESSION_AUDIT_CMD_MAX 512
/* RFC 5321 §4.5.3.1.2: a domain is at most 255 octets. */
#define SESSION_HELO_MAX 255

enum session_state {
	S_PROXY_HEADER,		/* waiting for the PROXY protocol header */
	S_TLS_HANDSHAKE,	/* implicit TLS, or after STARTTLS */
	S_CMD,			/* waiting for a command */
	S_AUTH_PLAIN,		/* sent "334 ", waiting for the PLAIN response */
	S_AUTH_LOGIN_USER,	/* sent the Username: prompt */
	S_AUTH_LOGIN_PASS,	/* sent the Password: prompt */
	S_AUTH_PENDING,		/* request with an auth worker */
	S_AUTH_DELAY,		/* failure_delay before the 535 */
	S_RELAY_WAIT,		/* smarthost connecting or answering */
	S_SHARED_WAIT,		/* a shared-state check (shared_policy.h) */
	S_DATA,			/* message data streaming to the smarthost */
	S_CLOSING,		/* last reply queued, closing */
};

/* The command whose smarthost reply the session waits for. P_MAIL_LATE:
 * a MAIL answered by us and sent on with the first RCPT (smtp_tx.c
 * mail_hold), whose reply the client does not wait for. */
enum relay_pending { P_NONE, P_MAIL, P_MAIL_LATE, P_RCPT, P_DATA, P_DOT,
		     P_RSET };

enum helo_state { HELO_NONE, HELO_HELO, HELO_EHLO };

/* A recipient as the message record lists it: the address and the
 * answer the client got for it (the smarthost's, or ours). */
struct tx_rcpt {
	char *path;
	int code;
	char enhanced[16];
};

/* One mail transaction (RFC 5321 §3.3): from MAIL to the end of DATA,
 * RSET, or the end of the session. */
struct smtp_tx {
	bool open;			/* the smarthost took the MAIL */
	/* MAIL answered by us (smtp_tx.c mail_hold): late stays set for
	 * the transaction; held until it goes upstream with the first
	 * RCPT; reply_due while our 250 waits for the smarthost's reply
	 * (commands pipelined behind it). The smarthost's refusal of it,
	 * if any, answers every RCPT. */
	bool mail_late, mail_held, mail_reply_due;
	struct relay_reply *mail_refusal;
	struct smtp_mail_args mail;
	struct smtp_rcpt_args rcpt;	/* the RCPT waiting for its reply */
	char first_rcpt[SMTP_PATH_MAX + 1];
	unsigned n_rcpt;		/* accepted by the smarthost */
	unsigned n_rcpt_tried;
	unsigned n_rcpt_answered;	/* tried - answered: in flight */
	/* DATA: the filter (NUL check, header scan, sender check) */
	struct data_filter *df;
	bool relay_lost;		/* smarthost gone during DATA: 451 */
	char refusal[300];		/* why the header check said no */
	uint64_t data_start;
	/* For the message record (session_audit.c): every RCPT answered,
	 * the refused ones up to a bound, the rest counted. */
	bool rcpt_due;			/* tx->rcpt waits for its answer */
	struct tx_rcpt *rcpts;
	size_t n_rcpts, rcpts_cap, n_refused_listed;
	unsigned long rcpts_unlisted;
};

/* The session: the connection and who is on it. */
struct smtp_session {
	struct smtp_session *prev, *next;
	struct smtp_session_host host;
	struct settings *st;
	const struct config *cfg;
	struct conn *conn;
	struct run_queue *queue;	/* the loop's, for resume */
	struct run_entry resume;	/* continue with buffered commands */
	sd_event_source *delay;		/* failure_delay timer, once needed */
	struct auth_lookup *lookup;
	struct shared_call *shared_call;	/* the check being waited for */
	enum session_state shared_resume;	/* the state after it */

	unsigned long id;
	char sid[24];
	char proxy_peer[INET6_ADDRSTRLEN];	/* the balancer's address */
	bool limits_counted;
	uint64_t start_usec;
	struct sockaddr_storage addr;
	char client_ip[INET6_ADDRSTRLEN];
	unsigned client_port;
	enum listen_mode mode;
	enum session_state state;
	enum helo_state helo;
	/* helo_name and user are "" (session_no_text) until set by
	 * session_set_text(), and sized to what they hold: idle sessions
	 * are what a server mostly keeps. */
	char *helo_name;
	bool authenticated;
	bool stopping;
	char *user;				/* canonical, once authenticated */
	char login_user[AUTH_USER_MAX + 1];	/* name being authenticated */
	unsigned char pw_hash[AUTH_CACHE_HASH_LEN];	/* for the cache */
	bool pw_hash_set;
	/* Held while the shared cache generation is asked (at most
	 * shared_state_timeout), wiped with the rest of smtp_auth_wipe(). */
	struct sasl_credentials *held_cr;
	uint64_t cache_gen;
	const char *address;	/* the user's, for AUTH= (addrs[0], user or
				   "") */
	char **addrs;			/* all the user's, for sender_check */
	size_t n_addrs;
	char **groups;			/* its rate groups (group_rate...) */
	size_t n_groups;

	struct smtp_tx *tx;		/* NULL between transactions */
	struct relay *relay;
	enum relay_pending pending;	/* the oldest command upstream */
	struct smtp_pipe *pipe;		/* what follows it (smtp_pipeline.c) */
	bool pipe_reading;		/* a command read behind pending */
	unsigned long n_messages;

	/* The command the replies being sent answer, as the audit
	 * records name it (audit_cmd.h); "" for none. */
	char audit_cmd[SESSION_AUDIT_CMD_MAX];
	bool relayed_reply;		/* the reply being sent is the
					   smarthost's */

	unsigned bad_commands;
	unsigned auth_failures;
	bool blocked;			/* this address just got blocked */
	unsigned long n_commands;
};

#define slog(s, level, fmt, ...) \
	log_msg(level, "session=%lu client=%s " fmt, (s)->id, (s)->client_ip, \
		##__VA_ARGS__)
/* An audit record of this session: its id and client come first. */
#define saudit(s, level, event, ...) \
	audit(level, event, "session", (s)->sid, "client", (s)->client_ip, \
	      __VA_ARGS__, NULL)

/* smtp_session.c */
void session_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* An error reply to a bad command; too many of them end the session. */
void session_reply_error(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void session_close(struct smtp_session *s);
void session_schedule_resume(struct smtp_session *s);
/* smtp_auth_on_delay(s) after usec; -1 without memory for the timer. */
int session_delay(struct smtp_session *s, uint64_t usec);
uint64_t session_now(struct smtp_session *s);
/* On a STARTTLS listener before STARTTLS. */
bool session_tls_required(const struct smtp_session *s);
void session_refuse_blocked(struct smtp_session *s);
/* The answer to a check that shared_state_failure = closed refused. */
void session_refuse_unavailable(struct smtp_session *s, const char *code);

/* Recipients accepted, or still waiting for their smarthost reply. */
#define TX_RCPTS(tx) ((tx)->n_rcpt + (tx)->n_rcpt_tried - (tx)->n_rcpt_answered)

/* smtp_pipeline.c */
/* A command went upstream: it waits for its reply, after those before. */
void smtp_pipe_expect(struct smtp_session *s, enum relay_pending p);
/* While a command read behind s->pending is handled: hold its reply of
 * ours (true) until the replies before it are out. */
bool smtp_pipe_hold(struct smtp_session *s, const char *reply, size_t len);
/* Likewise for session_close(): true if the close waits behind the
 * replies before it (then nothing more is read). */
bool smtp_pipe_hold_close(struct smtp_session *s);
/* In S_RELAY_WAIT: the next buffered command may go upstream now. */
bool smtp_pipe_can_read(struct smtp_session *s);
/* After the reply to s->pending: write held replies, make the next
 * upstream command s->pending. */
void smtp_pipe_advance(struct smtp_session *s);
/* The smarthost is gone: write what is held, and reply for each command
 * still upstream; returns how many those were. */
unsigned smtp_pipe_fail(struct smtp_session *s, const char *reply);
void smtp_pipe_free(struct smtp_session *s);

/* smtp_auth.c */
void smtp_auth_cmd(struct smtp_session *s, const char *args);
/* A line in one of the S_AUTH_* exchange states. */
void smtp_auth_response(struct smtp_session *s, const char *line,
			size_t len);
/* A line too long for the exchange (RFC 4954 §4). */
void smtp_auth_line_too_long(struct smtp_session *s);
void smtp_auth_wipe(struct smtp_session *s);
void smtp_auth_on_delay(struct smtp_session *s);
/* What authentication left in the session (addresses, groups). */
/* The empty text helo_name and user start as. */
extern char session_no_text[];
/* *field (helo_name, user) becomes at most max octets of text. */
void session_set_text(char **field, const char *text, size_t max);
void smtp_auth_free(struct smtp_session *s);

/* session_audit.c */
/* The command line just read (S_CMD) becomes the one replies answer;
 * session_audit_command_is() names one without a line (NULL: none). */
void session_audit_command(struct smtp_session *s, const char *line,
			   size_t len);
void session_audit_command_is(struct smtp_session *s, const char *name);
/* Each reply line as it is sent (NUL-terminated, no CRLF): a 4xx or
 * 5xx is a "reply" record; the answer to a RCPT goes into the
 * transaction's list. */
void session_audit_reply(struct smtp_session *s, const char *line,
			 size_t len);
/* The message record: the end of data answered by the smarthost. */
void session_audit_message(struct smtp_session *s,
			   const struct relay_reply *rep);
void session_audit_tx_free(struct smtp_tx *tx);

/* smtp_tx.c */
void smtp_tx_mail(struct smtp_session *s, const char *args);
void smtp_tx_rcpt(struct smtp_session *s, const char *args);
void smtp_tx_data(struct smtp_session *s, const char *args);
void smtp_tx_rset(struct smtp_session *s, const char *args);
/* Client octets after the 354. */
void smtp_tx_data_process(struct smtp_session *s);
/* Forget the transaction (EHLO, TLS, QUIT, end of session); one the
 * smarthost knows about takes the smarthost connection with it. */
void smtp_tx_abandon(struct smtp_session *s);
void smtp_tx_free(struct smtp_tx **tx);

#endif
