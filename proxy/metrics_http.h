/* [server] metrics_listen: a GET-only HTTP/1.x responder for the
 * metrics (metrics.h) on the network process's main event loop, never
 * on a serving thread's. One request per connection, closed after the
 * answer: GET /metrics gets 200 and the text format, another method
 * 405, another path 404, a request that does not parse 400, one whose
 * head passes METRICS_HTTP_REQUEST_MAX octets 431; a connection gets
 * METRICS_HTTP_TIMEOUT for all of it, and past METRICS_HTTP_CONNS_MAX
 * at once new ones are closed unanswered. */
#ifndef AUTHRELAY_METRICS_HTTP_H
#define AUTHRELAY_METRICS_HTTP_H

#include <systemd/sd-event.h>

#include "config.h"

#define METRICS_HTTP_REQUEST_MAX 4096
#define METRICS_HTTP_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define METRICS_HTTP_CONNS_MAX 8

struct metrics_http;

/* Bind host:port and serve on event. NULL with *error_r on failure. */
struct metrics_http *metrics_http_new(sd_event *event, const char *host,
				      const char *port, const char **error_r);
void metrics_http_free(struct metrics_http **mhp);

#endif
