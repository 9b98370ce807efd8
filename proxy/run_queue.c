#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "run_queue.h"

/* Runs per drain: a connection that keeps queueing itself (a client
 * that pipelines without end) yields the loop to the others after this
 * many. */
#define RUN_QUEUE_BUDGET 64

struct run_queue {
	sd_event *event;
	sd_event_source *defer;
	struct run_entry *head, *tail;
	unsigned refs;
	bool armed;			/* defer enabled */
	bool draining;
	struct run_queue *next_q;
};

/* Few queues (one per loop): a list, touched only on get and put. A
 * queue itself, like its sd_event, is only ever used by the thread that
 * runs that loop, so its fields need no lock. */
static pthread_mutex_t queues_lock = PTHREAD_MUTEX_INITIALIZER;
static struct run_queue *queues;

static int on_defer(sd_event_source *s, void *userdata)
{
	struct run_queue *q = userdata;

	(void)s;
	q->armed = false;
	run_queue_hold(q);	/* the last entry may go during the drain */
	run_queue_drain(q);
	run_queue_put(q);
	return 0;
}

struct run_queue *run_queue_get(sd_event *event)
{
	struct run_queue *q;

	pthread_mutex_lock(&queues_lock);
	for (q = queues; q != NULL; q = q->next_q)
		if (q->event == event)
			break;
	if (q == NULL) {
		q = calloc(1, sizeof(*q));
		if (q == NULL ||
		    sd_event_add_defer(event, &q->defer, on_defer, q) < 0) {
			free(q);
			pthread_mutex_unlock(&queues_lock);
			return NULL;
		}
		sd_event_source_set_enabled(q->defer, SD_EVENT_OFF);
		q->event = event;
		q->next_q = queues;
		queues = q;
	}
	q->refs++;
	pthread_mutex_unlock(&queues_lock);
	return q;
}

void run_queue_hold(struct run_queue *q)
{
	q->refs++;
}

void run_queue_put(struct run_queue *q)
{
	struct run_queue **pp;

	if (q == NULL || --q->refs > 0)
		return;
	pthread_mutex_lock(&queues_lock);
	for (pp = &queues; *pp != NULL; pp = &(*pp)->next_q)
		if (*pp == q) {
			*pp = q->next_q;
			break;
		}
	pthread_mutex_unlock(&queues_lock);
	/* Whoever queued an entry holds a reference until it is gone. */
	if (q->head != NULL)
		log_err("run queue freed with entries queued");
	sd_event_source_disable_unref(q->defer);
	free(q);
}

static void arm(struct run_queue *q)
{
	if (!q->armed && !q->draining) {
		sd_event_source_set_enabled(q->defer, SD_EVENT_ONESHOT);
		q->armed = true;
	}
}

void run_queue_add(struct run_queue *q, struct run_entry *e)
{
	if (e->queued)
		return;
	e->queued = true;
	e->next = NULL;
	e->prev = q->tail;
	if (q->tail != NULL)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	arm(q);
}

void run_queue_remove(struct run_queue *q, struct run_entry *e)
{
	if (!e->queued)
		return;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		q->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		q->tail = e->prev;
	e->prev = e->next = NULL;
	e->queued = false;
}

void run_queue_drain(struct run_queue *q)
{
	unsigned budget = RUN_QUEUE_BUDGET;

	if (q->draining)
		return;
	q->draining = true;
	while (q->head != NULL && budget-- > 0) {
		struct run_entry *e = q->head;

		/* Out before it runs: the run may queue it again, or free
		 * it (and take others out). */
		run_queue_remove(q, e);
		e->run(e);
	}
	q->draining = false;
	if (q->head != NULL)
		arm(q);
	else if (q->armed) {
		sd_event_source_set_enabled(q->defer, SD_EVENT_OFF);
		q->armed = false;
	}
}
