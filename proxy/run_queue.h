#ifndef AUTHRELAY_RUN_QUEUE_H
#define AUTHRELAY_RUN_QUEUE_H

/* Work that must run soon, on the loop that owns it, but not from inside
 * the callback that asked for it: a connection whose session queued a
 * reply, or that has input OpenSSL already read. One queue per sd_event
 * (each thread's loop), drained by one deferred event source, and
 * straight away at the end of each connection's own I/O or timer
 * callback. A source of its own per connection would cost a turn of the
 * loop (and an epoll_wait) per connection and per reply. */

#include <stdbool.h>
#include <stddef.h>

#include <systemd/sd-event.h>

struct run_entry {
	struct run_entry *prev, *next;
	bool queued;
	void (*run)(struct run_entry *e);
};

/* The struct that holds entry e as its member named member. */
#define RUN_ENTRY_OWNER(e, type, member) \
	((type *)(void *)((char *)(e) - offsetof(type, member)))

struct run_queue;

/* The queue of event (made on first use); each get is paired with a put.
 * NULL only without memory for a new one. */
struct run_queue *run_queue_get(sd_event *event);
/* One more reference to q, for a caller that drains it after a run that
 * may free the last entry holding it. */
void run_queue_hold(struct run_queue *q);
void run_queue_put(struct run_queue *q);

/* Appends e unless it is queued already. */
void run_queue_add(struct run_queue *q, struct run_entry *e);
/* Takes e out if it is queued (before e's owner frees it). */
void run_queue_remove(struct run_queue *q, struct run_entry *e);
/* Runs what is queued, including what those runs queue, up to a bound
 * per call; what is left runs on the loop's next turn. */
void run_queue_drain(struct run_queue *q);

#endif
