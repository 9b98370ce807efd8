#include "autoconf.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "privsep.h"

int privsep_user_lookup(const char *name, uid_t *uid_r, gid_t *gid_r,
			const char **error_r)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		*error_r = errno != 0 ? strerror(errno) :
			   "no such user (create it with systemd-sysusers "
			   "authrelay.sysusers)";
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		*error_r = "the user has uid or gid 0";
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

static int clear_capability_sets(const char **error_r)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	bool any = false;

	/* Started without any (a unit with User= and an empty bounding
	 * set, whose system call filter may refuse capset): done. */
	if (syscall(SYS_capget, &hdr, data) < 0) {
		*error_r = "capget";
		return -1;
	}
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		any = any || data[i].effective || data[i].permitted ||
		      data[i].inheritable;
	if (!any)
		return 0;
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0) {
		*error_r = "capset";
		return -1;
	}
	memset(data, 0xff, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0) {
		*error_r = "capget";
		return -1;
	}
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
		if (data[i].effective || data[i].permitted ||
		    data[i].inheritable) {
			*error_r = "capabilities still set after capset";
			return -1;
		}
	}
	return 0;
}

/* Every capability out of the bounding set (needs CAP_SETPCAP unless it
 * is empty already). The kernel's last capability is where
 * PR_CAPBSET_READ says EINVAL. */
static int clear_bounding_set(bool root, const char **error_r)
{
	for (unsigned long cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0 && errno == EINVAL)
			return 0;
		if (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			/* An ordinary user without CAP_SETPCAP: with
			 * no_new_privs (set below) no exec can bring the
			 * bounding set into use. */
			if (!root && errno == EPERM)
				return 0;
			*error_r = "cannot empty the capability bounding set "
				   "(CAP_SETPCAP missing?)";
			return -1;
		}
	}
	return 0;
}

int privsep_drop(uid_t uid, gid_t gid, const char **error_r)
{
	bool root = geteuid() == 0;
	uid_t r, e, s;
	gid_t rg, eg, sg;

	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL) {
		*error_r = "cannot clear the ambient capabilities";
		return -1;
	}
	if (clear_bounding_set(root, error_r) < 0)
		return -1;
	if (root) {
		if (setgroups(0, NULL) < 0) {
			*error_r = "setgroups";
			return -1;
		}
		if (setresgid(gid, gid, gid) < 0) {
			*error_r = "setresgid";
			return -1;
		}
		if (setresuid(uid, uid, uid) < 0) {
			*error_r = "setresuid";
			return -1;
		}
		/* No way back. */
		if (setuid(0) == 0 || seteuid(0) == 0) {
			*error_r = "uid 0 regained after the switch";
			return -1;
		}
		if (getresuid(&r, &e, &s) < 0 || r != uid || e != uid ||
		    s != uid || getresgid(&rg, &eg, &sg) < 0 || rg != gid ||
		    eg != gid || sg != gid) {
			*error_r = "uid or gid not switched in every slot";
			return -1;
		}
	}
	if (clear_capability_sets(error_r) < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*error_r = "PR_SET_NO_NEW_PRIVS";
		return -1;
	}
	return 0;
}

int privsep_seccomp(const char **error_r)
{
	/* Refused with EPERM; everything else is allowed (the unit's
	 * SystemCallFilter= adds an allow list under systemd). */
	static const char *const denied[] = {
		"execve", "execveat", "ptrace", "process_vm_readv",
		"process_vm_writev", "mount", "umount2", "pivot_root",
		"chroot", "setns", "unshare", "kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module", "bpf",
		"perf_event_open", "keyctl", "add_key", "request_key",
		"userfaultfd", "setuid", "setgid", "setreuid", "setregid",
		"setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups",
		"capset", "swapon", "swapoff", "reboot", "acct", "quotactl",
		"open_by_handle_at", "name_to_handle_at", "iopl", "ioperm",
		"syslog", "fanotify_init", "settimeofday", "clock_settime",
		"clock_adjtime", "adjtimex", "mknod", "mknodat",
		"sethostname", "setdomainname", "vhangup", "pidfd_getfd",
		"move_mount", "open_tree", "fsopen", "fsmount", "fsconfig",
		"fspick", "mount_setattr",
	};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = 0;

	if (ctx == NULL) {
		*error_r = "seccomp_init failed";
		return -1;
	}
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr == __NR_SCMP_ERROR)
			continue;	/* not on this architecture */
#ifdef SANITIZED_BUILD
		/* LeakSanitizer stops the world with ptrace at exit. */
		if (strcmp(denied[i], "ptrace") == 0)
			continue;
#endif
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc < 0)
			break;
	}
	/* Sockets: unix (workers, journal), inet and inet6 (clients,
	 * smarthosts, DNS), netlink (getaddrinfo's AI_ADDRCONFIG); one
	 * comparison per rule, so every other family one by one. */
	for (int af = 0; rc == 0 && af < AF_NETLINK; af++)
		if (af != AF_UNIX && af != AF_INET && af != AF_INET6)
			rc = seccomp_rule_add(ctx,
					      SCMP_ACT_ERRNO(EAFNOSUPPORT),
					      SCMP_SYS(socket), 1,
					      SCMP_A0(SCMP_CMP_EQ, af, 0));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT),
				      SCMP_SYS(socket), 1,
				      SCMP_A0(SCMP_CMP_GT, AF_NETLINK, 0));
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0) {
		*error_r = strerror(-rc);
		return -1;
	}
	return 0;
}

/* The argv area: from argv[0] to the end of the last argument that
 * follows it contiguously. */
static char *title_area;
static size_t title_size;

void proctitle_init(int argc, char **argv)
{
	char *end;

	if (argc < 1 || argv[0] == NULL)
		return;
	end = argv[0] + strlen(argv[0]) + 1;
	for (int i = 1; i < argc && argv[i] == end; i++)
		end = argv[i] + strlen(argv[i]) + 1;
	title_area = argv[0];
	title_size = (size_t)(end - argv[0]);
}

void proctitle_set(const char *title)
{
	size_t len;

	if (title_area == NULL || title_size < 2)
		return;
	len = strlen(title);
	if (len > title_size - 1)
		len = title_size - 1;
	memset(title_area, '\0', title_size);
	memcpy(title_area, title, len);
}
