/* The PAM backend of the auth worker: pam_authenticate and pam_acct_mgmt
 * through a conversation that answers with the request's credentials,
 * PAM_USER read back as the canonical name, NSS group membership, and
 * the user's address. Blocking: runs in the worker process only. */
#ifndef AUTHRELAY_PAM_BACKEND_H
#define AUTHRELAY_PAM_BACKEND_H

#include <stddef.h>

#include "auth_proto.h"
#include "config.h"

struct pam_backend;

/* Copies its arguments. require_group: NSS group names, membership of
 * any one suffices; none: any user PAM accepts. address_domain NULL or
 * empty: no address in the reply. send_as: (address, NSS group) pairs
 * from the config, which must outlive the backend: a member of the group
 * gets the address too. cfg (kept, not copied): its group_rate and
 * group_recipient_rate groups the user is in are reported. */
struct pam_backend *pam_backend_new(const char *service,
				    char *const *require_group,
				    size_t n_require_group,
				    const char *address_domain,
				    const struct config_send_as *send_as,
				    size_t n_send_as, const struct config *cfg);
void pam_backend_free(struct pam_backend **pb);

/* Authenticate req and fill in rep->result and rep->reason, and on OK
 * rep->user (the canonical name) and rep->address. rep->id is the
 * caller's. The caller owns req and wipes its password; copies made
 * here are wiped here. */
void pam_backend_auth(const struct pam_backend *pb,
		      const struct auth_request *req, struct auth_reply *rep);

#endif
