/* Connection limits shared by every loop thread: max_connections in all
 * and max_connections_per_ip per client address. Per instance. */
#ifndef AUTHRELAY_CONN_LIMITS_H
#define AUTHRELAY_CONN_LIMITS_H

#include <stdbool.h>
#include <sys/socket.h>

enum limits_verdict { LIMITS_OK, LIMITS_TOTAL, LIMITS_PER_IP };

/* Count a new connection from addr if both limits allow it. */
enum limits_verdict limits_connect(const struct sockaddr_storage *addr,
				   unsigned max_total, unsigned max_per_ip);
/* Undo limits_connect (only after LIMITS_OK). */
void limits_disconnect(const struct sockaddr_storage *addr);
unsigned limits_total(void);

#endif
