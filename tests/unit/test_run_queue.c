/* The run queue (proxy/run_queue.c): what is queued runs once, in order,
 * on the loop that owns it; a run may queue itself or others again, or
 * take others out; a drain stops after its budget and the loop's next
 * turn runs the rest; one queue per sd_event, gone with its last user. */
#include "autoconf.h"

#include <systemd/sd-event.h>

#include "run_queue.h"
#include "test.h"

#define N 200

struct item {
	struct run_entry e;	/* first: the entry is the item */
	int id;
	int runs;
	int requeue;		/* queue itself again this many times */
	struct item *drop;	/* take this one out when run */
};

static struct run_queue *q;
static int order[4 * N], n_order;

static void run(struct run_entry *e)
{
	struct item *it = (struct item *)e;

	it->runs++;
	if (n_order < (int)(sizeof(order) / sizeof(order[0])))
		order[n_order++] = it->id;
	if (it->drop != NULL)
		run_queue_remove(q, &it->drop->e);
	if (it->requeue > 0) {
		it->requeue--;
		run_queue_add(q, &it->e);
	}
}

/* Loop turns until the queue's deferred source has nothing left (at
 * most `max`); returns the turns taken. */
static int turns(sd_event *ev, int max)
{
	int t = 0;

	while (t < max && sd_event_run(ev, 0) > 0)
		t++;
	return t;
}

int main(void)
{
	static struct item items[N];
	sd_event *ev = NULL, *ev2 = NULL;
	struct run_queue *q2, *again;
	int i, in_order;

	if (sd_event_new(&ev) < 0 || sd_event_new(&ev2) < 0) {
		fprintf(stderr, "sd_event_new failed\n");
		return 99;
	}
	q = run_queue_get(ev);
	CHECK(q != NULL, "a queue for the loop");
	again = run_queue_get(ev);
	CHECK(again == q, "the same loop, the same queue");
	q2 = run_queue_get(ev2);
	CHECK(q2 != NULL && q2 != q, "another loop, another queue");
	run_queue_put(again);
	run_queue_put(q2);

	for (i = 0; i < N; i++) {
		items[i].e.run = run;
		items[i].id = i;
	}

	/* Queued twice, run once; in the order queued. */
	for (i = 0; i < 10; i++) {
		run_queue_add(q, &items[i].e);
		run_queue_add(q, &items[i].e);
	}
	run_queue_drain(q);
	in_order = 1;
	for (i = 0; i < 10; i++) {
		CHECK_INT(items[i].runs, 1, "runs of an item queued twice");
		in_order &= order[i] == i;
	}
	CHECK_INT(n_order, 10, "runs in all");
	CHECK(in_order, "run in the order queued");

	/* Taken out before the drain: not run. */
	n_order = 0;
	run_queue_add(q, &items[20].e);
	run_queue_add(q, &items[21].e);
	run_queue_add(q, &items[22].e);
	run_queue_remove(q, &items[21].e);
	run_queue_drain(q);
	CHECK_INT(n_order, 2, "runs after one of three was taken out");
	CHECK_INT(items[21].runs, 0, "runs of the one taken out");

	/* A run takes out one queued behind it (its connection was freed
	 * by the first one's session). */
	n_order = 0;
	items[30].drop = &items[31];
	run_queue_add(q, &items[30].e);
	run_queue_add(q, &items[31].e);
	run_queue_add(q, &items[32].e);
	run_queue_drain(q);
	CHECK_INT(items[31].runs, 0, "runs of the one taken out by a run");
	CHECK_INT(items[32].runs, 1, "runs of the one after it");

	/* More than a drain's budget: the rest runs on the loop's next
	 * turn, through the queue's own deferred source. */
	n_order = 0;
	for (i = 100; i < N; i++)
		run_queue_add(q, &items[i].e);
	run_queue_drain(q);
	CHECK(n_order > 0 && n_order < N - 100,
	      "a drain stops at its budget: %d of %d ran", n_order, N - 100);
	CHECK(turns(ev, 10) >= 1, "the loop has the rest to run");
	CHECK_INT(n_order, N - 100, "all ran after the loop's turns");

	/* An item that queues itself again and again does not hold the
	 * loop: each drain runs it at most its budget of times. */
	n_order = 0;
	items[40].requeue = 1000;
	run_queue_add(q, &items[40].e);
	run_queue_drain(q);
	CHECK(items[40].runs < 1000,
	      "a self-queueing item yields the loop (%d runs in one drain)",
	      items[40].runs);
	i = turns(ev, 100);
	CHECK(i > 1 && i < 100, "it goes on running over later turns (%d)",
	      i);
	CHECK_INT(items[40].runs, 1001, "runs of the self-queueing item");
	CHECK_INT(turns(ev, 10), 0, "nothing left for the loop");

	run_queue_put(q);
	/* The last put freed the queue: a new get makes a fresh one that
	 * works the same. */
	q = run_queue_get(ev);
	CHECK(q != NULL, "a queue again after the last put");
	n_order = 0;
	run_queue_add(q, &items[50].e);
	CHECK_INT(turns(ev, 10), 1, "the loop runs what was queued");
	CHECK_INT(n_order, 1, "runs through the loop alone");
	run_queue_put(q);

	sd_event_unref(ev);
	sd_event_unref(ev2);
	return test_done("test_run_queue");
}
