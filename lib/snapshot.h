/*
 * snapshot.h - the config and the engine built from it, as one immutable
 * unit that a reload replaces while mail is being judged.
 *
 * A daemon holds one current snapshot. A connection acquires it when a
 * transaction starts and keeps it until the transaction ends, so that a
 * message is judged from start to end by one config; the next
 * transaction acquires whatever is current then. A reload builds a
 * complete new snapshot (config read, rule files compiled, checks
 * started) off to the side; only when all of that succeeded does it
 * become current. A broken file therefore changes nothing: the old
 * snapshot stays, and the error (file:line) is returned.
 *
 * Acquiring takes no lock: an atomic pointer load and reference count
 * increment (a reload waits the few nanoseconds until no acquire is
 * between those two steps before dropping its own reference to the old
 * snapshot). The last release of a replaced snapshot frees it, in the
 * thread that released it.
 *
 * snapshot_init(path, prepare, release_extra, err)
 *	Loads the first snapshot from the config file at path. prepare,
 *	if set, is called with each new snapshot before it becomes current
 *	(the policy server parses its allow list there) and may refuse it
 *	with an error; release_extra frees what prepare hung on ->extra.
 *	0 or MXG_E* with err.
 * snapshot_acquire() / snapshot_release(snap)
 *	A reference to the current snapshot; every acquire is paired with
 *	one release.
 * snapshot_generation()
 *	The current snapshot's generation: 1 at start, +1 per reload that
 *	took effect. Cheap; compare it with snap->generation to know
 *	whether a reload happened.
 * snapshot_reload(err)
 *	Re-reads the file given to snapshot_init. 0: the new snapshot is
 *	current. Otherwise the old one stays and err says why. Settings
 *	that only take effect at restart (sockets, user, group, pid file,
 *	metrics listeners) are logged when they differ. One reload at a
 *	time (serialised by the caller's signal handling thread).
 * snapshot_shutdown()
 *	Drops the current snapshot (at exit, after every connection has
 *	released its own).
 */
#ifndef MXG_SNAPSHOT_H
#define MXG_SNAPSHOT_H

#include <stdatomic.h>

#include "config.h"
#include "engine.h"

struct snapshot {
	struct config *cfg;
	struct engine *engine;
	unsigned long generation;
	void *extra;		/* the daemon's own, see snapshot_init */
	atomic_long refs;
};

typedef int (*snapshot_prepare_fn)(struct snapshot *snap, char *err);
typedef void (*snapshot_release_fn)(void *extra);

int snapshot_init(const char *path, snapshot_prepare_fn prepare,
    snapshot_release_fn release_extra, char *err);
struct snapshot *snapshot_acquire(void);
void snapshot_release(struct snapshot *snap);
unsigned long snapshot_generation(void);
int snapshot_reload(char *err);
void snapshot_shutdown(void);

#endif
