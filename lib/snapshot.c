#include "snapshot.h"

#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mxg.h"

static char *config_path;
static snapshot_prepare_fn prepare_hook;
static snapshot_release_fn release_hook;
static _Atomic(struct snapshot *) current;
/* Threads between loading `current` and counting their reference. */
static atomic_long acquiring;

static void
snapshot_free(struct snapshot *snap)
{
	if (release_hook != NULL && snap->extra != NULL)
		release_hook(snap->extra);
	engine_free(snap->engine);
	config_free(snap->cfg);
	free(snap);
}

static int
snapshot_build(unsigned long generation, struct snapshot **out, char *err)
{
	struct snapshot *snap = mxg_calloc(1, sizeof(*snap));
	int rc;

	if ((rc = config_load(config_path, &snap->cfg, err)) != 0 ||
	    (rc = engine_new(snap->cfg, &snap->engine, err)) != 0 ||
	    (prepare_hook != NULL && (rc = prepare_hook(snap, err)) != 0)) {
		snapshot_free(snap);
		return rc;
	}
	snap->generation = generation;
	atomic_init(&snap->refs, 1);	/* the reference `current` holds */
	*out = snap;
	return MXG_OK;
}

int
snapshot_init(const char *path, snapshot_prepare_fn prepare,
    snapshot_release_fn release_extra, char *err)
{
	struct snapshot *snap;
	int rc;

	config_path = mxg_strdup(path);
	prepare_hook = prepare;
	release_hook = release_extra;
	if ((rc = snapshot_build(1, &snap, err)) != 0)
		return rc;
	atomic_store(&current, snap);
	return MXG_OK;
}

struct snapshot *
snapshot_acquire(void)
{
	struct snapshot *snap;

	atomic_fetch_add(&acquiring, 1);
	snap = atomic_load(&current);
	atomic_fetch_add(&snap->refs, 1);
	atomic_fetch_sub(&acquiring, 1);
	return snap;
}

void
snapshot_release(struct snapshot *snap)
{
	if (snap != NULL && atomic_fetch_sub(&snap->refs, 1) == 1)
		snapshot_free(snap);
}

unsigned long
snapshot_generation(void)
{
	return atomic_load(&current)->generation;
}

static bool
differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* Settings read once at start: say so when a reload would change them. */
static void
note_restart_only(const struct config *old, const struct config *cfg)
{
	static const char *const restart = "differs in the file; takes effect "
	    "at restart";

	if (differs(old->milter.socket, cfg->milter.socket))
		log_msg(NULL, LOG_LEVEL_WARNING, "[milter] socket %s", restart);
	if (differs(old->policy.listen, cfg->policy.listen))
		log_msg(NULL, LOG_LEVEL_WARNING, "[policy] listen %s", restart);
	if (differs(old->milter.user, cfg->milter.user) ||
	    differs(old->milter.group, cfg->milter.group))
		log_msg(NULL, LOG_LEVEL_WARNING, "[milter] user/group %s",
		    restart);
	if (old->milter.socket_mode != cfg->milter.socket_mode)
		log_msg(NULL, LOG_LEVEL_WARNING, "[milter] socket_mode %s",
		    restart);
	if (differs(old->milter.pidfile, cfg->milter.pidfile) ||
	    differs(old->policy.pidfile, cfg->policy.pidfile))
		log_msg(NULL, LOG_LEVEL_WARNING, "pidfile %s", restart);
	if (differs(old->metrics.listen, cfg->metrics.listen) ||
	    differs(old->metrics.policy_listen, cfg->metrics.policy_listen))
		log_msg(NULL, LOG_LEVEL_WARNING, "[metrics] listeners %s",
		    restart);
	if (old->milter.timeout_ms != cfg->milter.timeout_ms)
		log_msg(NULL, LOG_LEVEL_WARNING, "[milter] timeout %s", restart);
	if (old->policy.max_connections != cfg->policy.max_connections)
		log_msg(NULL, LOG_LEVEL_WARNING, "[policy] max_connections %s",
		    restart);
}

int
snapshot_reload(char *err)
{
	struct snapshot *old = atomic_load(&current), *snap;
	int rc;

	if ((rc = snapshot_build(old->generation + 1, &snap, err)) != 0)
		return rc;
	note_restart_only(old->cfg, snap->cfg);
	log_set_level(snap->cfg->milter.log_level);
	log_set_format(snap->cfg->log.format);
	atomic_store(&current, snap);
	/* A thread that loaded `old` before the store may not have counted
	 * its reference yet; once none is in between, old's count is
	 * exact and dropping ours is safe. */
	while (atomic_load(&acquiring) != 0)
		sched_yield();
	snapshot_release(old);
	return MXG_OK;
}

void
snapshot_shutdown(void)
{
	struct snapshot *snap = atomic_exchange(&current, NULL);

	snapshot_release(snap);
	free(config_path);
	config_path = NULL;
}
