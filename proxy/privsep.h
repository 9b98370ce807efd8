/* Privilege separation: what the network process (and an unprivileged
 * auth worker) gives up before it reads a byte from a client.
 *
 * privsep_drop() leaves the process with the given uid and gid in all
 * four slots (real, effective, saved, filesystem), no supplementary
 * groups, every capability set empty (effective, permitted, inheritable,
 * ambient and bounding) and no_new_privs set. privsep_seccomp() adds a
 * system call filter that refuses what the network process never needs
 * (exec, ptrace, mounts, namespaces, kernel modules, keyrings, bpf,
 * credential changes, sockets outside unix/inet/inet6/netlink). */
#ifndef AUTHRELAY_PRIVSEP_H
#define AUTHRELAY_PRIVSEP_H

#include <stdbool.h>
#include <sys/types.h>

/* The uid and gid of a system user; -1 with error_r when unknown. */
int privsep_user_lookup(const char *name, uid_t *uid_r, gid_t *gid_r,
			const char **error_r);
/* As root (with CAP_SETUID, CAP_SETGID, CAP_SETPCAP): become uid/gid for
 * good. Not as root: only the capability sets and no_new_privs. -1 with
 * error_r if any step fails (the caller must not go on). */
int privsep_drop(uid_t uid, gid_t gid, const char **error_r);
/* The network process's system call filter; -1 with error_r. */
int privsep_seccomp(const char **error_r);

/* What `ps` shows for this process: the argv area is overwritten
 * (strings after argv[0] are lost: copy what you need first). */
void proctitle_init(int argc, char **argv);
void proctitle_set(const char *title);

#endif
