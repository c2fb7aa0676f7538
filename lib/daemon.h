/*
 * daemon.h - what mxguard-milter and mxguard-policy do alike to become
 * a service: detach, prepare their socket, drop root, write a pid file,
 * talk to systemd.
 *
 * Order at start (both daemons):
 *	daemon_detach()          unless -f; the parent waits for
 *	                         daemon_ready() or the child's exit status,
 *	                         so a failure to start is the start's exit
 *	                         status, not a silent death in the background
 *	daemon_unix_socket_prepare(path)
 *	                         before binding: a stale socket file (nobody
 *	                         accepts on it) is removed; a live one, or a
 *	                         file that is not a socket, is an error
 *	bind / listen
 *	daemon_unix_socket_finish(path, cfg)
 *	                         [milter] socket_mode, owned by the group
 *	daemon_drop_privileges(cfg)
 *	                         as root: to [milter] user / group, with no
 *	                         supplementary groups; root with no user is
 *	                         refused (user = root insists, with a
 *	                         warning); not root: nothing to do
 *	engine_new ...
 *	daemon_pidfile_write(path)   after the drop, so the service user
 *	                             can remove it at exit
 *	daemon_ready()           READY=1 to systemd (when NOTIFY_SOCKET is
 *	                         set) and the waiting parent
 *
 * Reload: daemon_notify("RELOADING=1") before, daemon_notify("READY=1")
 * after; daemon_reload_status_write() records the outcome beside the pid
 * file (PIDFILE.reload: "generation=N ok=yes|no time=UNIX error=TEXT"),
 * which `mxguard reload` waits for.
 *
 * Every call returns 0 or MXG_E* with err.
 */
#ifndef MXG_DAEMON_H
#define MXG_DAEMON_H

#include <stdbool.h>

#include "config.h"

int daemon_detach(char *err);
void daemon_ready(void);
void daemon_notify(const char *state);

int daemon_unix_socket_prepare(const char *path, char *err);
int daemon_unix_socket_finish(const char *path, const struct config *cfg,
    char *err);
int daemon_drop_privileges(const struct config *cfg, char *err);

int daemon_pidfile_write(const char *path, char *err);
void daemon_pidfile_remove(const char *path);

/* The outcome of a reload, for `mxguard reload`. */
struct daemon_reload_status {
	unsigned long attempts;	/* reload signals handled since start */
	unsigned long generation;
	bool ok;
	long long time;		/* seconds since the epoch */
	char error[600];
};
void daemon_reload_status_write(const char *pidfile,
    const struct daemon_reload_status *status);
int daemon_reload_status_read(const char *pidfile,
    struct daemon_reload_status *status);

/* One reload (lib/snapshot.h) with everything around it: systemd told
 * RELOADING then READY, the outcome logged once and written for
 * `mxguard reload` (beside pidfile, if set), counted in metrics.
 * Returns what snapshot_reload returned. Call from one thread only. */
int daemon_reload(const char *pidfile);

/* "unix:/PATH" or "local:/PATH" -> "/PATH"; NULL for inet sockets. */
const char *daemon_unix_path(const char *spec);

#endif
