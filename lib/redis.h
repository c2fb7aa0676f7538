/*
 * redis.h - a pool of Redis connections (hiredis) shared by the threads
 * of one process, for the checks that keep state a fleet must share.
 *
 * Section [redis]: server (HOST:PORT or unix:/PATH), password, database,
 * connect_timeout, command_timeout, prefix (put before every key).
 *
 * hiredis contexts are not thread-safe: a caller borrows one for one
 * command and gives it back; a context that failed is dropped and the
 * next call connects anew. While Redis is down, calls fail at once for
 * a second instead of each paying the connect timeout, and the outage
 * is logged once when it starts and once when it ends, not per message.
 *
 * redis_pool_new(cfg, &pool, err)   never connects (Redis may be down
 *	at start); 0 or MXG_EINVAL for a bad server. Caller frees.
 * redis_run_script(pool, script, nkeys, argv, argvlen, argc, err)
 *	EVALSHA of script with argv = keys then arguments (nkeys of argc,
 *	any number); loads it with SCRIPT LOAD the first time and again
 *	after NOSCRIPT (a restarted or flushed Redis). Returns the reply
 *	(caller frees with freeReplyObject) or NULL with err for a
 *	connection failure, a timeout or an error reply. Thread-safe.
 * redis_run_command(pool, argv, argvlen, argc, err)
 *	Any command, same contract.
 * redis_key(pool, suffix, out)      prefix + suffix into a strbuf.
 */
#ifndef MXG_REDIS_H
#define MXG_REDIS_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdbool.h>

#include "config.h"
#include "strbuf.h"

struct redis_pool;

struct redis_script {
	const char *source;
	pthread_mutex_t lock;
	char sha[41];		/* "" until loaded */
};

#define REDIS_SCRIPT_INIT(src) {src, PTHREAD_MUTEX_INITIALIZER, ""}

int redis_pool_new(const struct config *cfg, struct redis_pool **pool,
    char *err);
void redis_pool_free(struct redis_pool *pool);

redisReply *redis_run_script(struct redis_pool *pool,
    struct redis_script *script, int nkeys, const char **argv,
    const size_t *argvlen, int argc, char *err);
redisReply *redis_run_command(struct redis_pool *pool, const char **argv,
    const size_t *argvlen, int argc, char *err);
void redis_key(const struct redis_pool *pool, const char *suffix,
    struct strbuf *out);

#endif
