#include "redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "mxg.h"

#define REDIS_POOL_IDLE_MAX 64
/* After a failure, calls fail at once for this long. */
#define REDIS_BACKOFF_MS 1000

struct redis_pool {
	char *host;		/* NULL for a unix socket */
	int port;
	char *path;
	char *password;
	int database;
	long connect_timeout_ms;
	long command_timeout_ms;
	char *prefix;

	pthread_mutex_t lock;
	redisContext *idle[REDIS_POOL_IDLE_MAX];
	int nidle;
	bool down;
	long long retry_at_ms;
};

static struct timeval
to_timeval(long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	return tv;
}

int
redis_pool_new(const struct config *cfg, struct redis_pool **out, char *err)
{
	struct redis_pool *pool = mxg_calloc(1, sizeof(*pool));
	const char *server = cfg->redis.server;

	*out = NULL;
	if (strncmp(server, "unix:", 5) == 0) {
		if (server[5] != '/') {
			free(pool);
			return mxg_fail(err, MXG_EINVAL, "[redis] server: "
			    "'%s' is not unix:/PATH", server);
		}
		pool->path = mxg_strdup(server + 5);
	} else {
		const char *colon = strrchr(server, ':');
		char *end;
		long port = colon ? strtol(colon + 1, &end, 10) : 0;

		if (colon == NULL || colon == server || end == colon + 1 ||
		    *end != '\0' || port < 1 || port > 65535) {
			free(pool);
			return mxg_fail(err, MXG_EINVAL, "[redis] server: '%s' "
			    "is not HOST:PORT or unix:/PATH", server);
		}
		pool->host = mxg_strndup(server, (size_t)(colon - server));
		pool->port = (int)port;
	}
	pool->password = cfg->redis.password ? mxg_strdup(cfg->redis.password) :
	    NULL;
	pool->database = cfg->redis.database;
	pool->connect_timeout_ms = cfg->redis.connect_timeout_ms;
	pool->command_timeout_ms = cfg->redis.command_timeout_ms;
	pool->prefix = mxg_strdup(cfg->redis.prefix ? cfg->redis.prefix : "");
	pthread_mutex_init(&pool->lock, NULL);
	*out = pool;
	return MXG_OK;
}

void
redis_pool_free(struct redis_pool *pool)
{
	if (pool == NULL)
		return;
	for (int i = 0; i < pool->nidle; i++)
		redisFree(pool->idle[i]);
	pthread_mutex_destroy(&pool->lock);
	free(pool->host);
	free(pool->path);
	free(pool->password);
	free(pool->prefix);
	free(pool);
}

void
redis_key(const struct redis_pool *pool, const char *suffix,
    struct strbuf *out)
{
	strbuf_puts(out, pool->prefix);
	strbuf_puts(out, suffix);
}

/* Records a failure: logged once per outage. */
static void
pool_failed(struct redis_pool *pool, const char *why)
{
	bool first;

	pthread_mutex_lock(&pool->lock);
	first = !pool->down;
	pool->down = true;
	pool->retry_at_ms = mxg_now_ms() + REDIS_BACKOFF_MS;
	pthread_mutex_unlock(&pool->lock);
	if (first) {
		char port[16] = "";

		if (pool->host != NULL)
			snprintf(port, sizeof(port), ":%d", pool->port);
		log_msg(NULL, LOG_LEVEL_ERR, "redis %s%s: %s; failing fast "
		    "until it answers again", pool->host ? pool->host :
		    pool->path, port, why);
	}
}

static void
pool_succeeded(struct redis_pool *pool)
{
	bool was_down;

	pthread_mutex_lock(&pool->lock);
	was_down = pool->down;
	pool->down = false;
	pthread_mutex_unlock(&pool->lock);
	if (was_down)
		log_msg(NULL, LOG_LEVEL_NOTICE, "redis is answering again");
}

static redisReply *
command(redisContext *c, int argc, const char **argv, const size_t *argvlen)
{
	return redisCommandArgv(c, argc, argv, argvlen);
}

static redisContext *
connect_one(struct redis_pool *pool, char *err)
{
	redisContext *c = pool->path ?
	    redisConnectUnixWithTimeout(pool->path,
	    to_timeval(pool->connect_timeout_ms)) :
	    redisConnectWithTimeout(pool->host, pool->port,
	    to_timeval(pool->connect_timeout_ms));

	if (c == NULL) {
		mxg_fail(err, MXG_EIO, "cannot allocate a connection");
		return NULL;
	}
	if (c->err) {
		mxg_fail(err, MXG_EIO, "connect: %s", c->errstr);
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, to_timeval(pool->command_timeout_ms));
	if (pool->password != NULL || pool->database != 0) {
		char db[16];
		const char *argv[2];
		redisReply *r;

		if (pool->password != NULL) {
			argv[0] = "AUTH";
			argv[1] = pool->password;
			r = command(c, 2, argv, NULL);
			if (r == NULL || r->type == REDIS_REPLY_ERROR) {
				mxg_fail(err, MXG_EIO, "AUTH: %s", r ? r->str :
				    c->errstr);
				goto fail_reply;
			}
			freeReplyObject(r);
		}
		if (pool->database != 0) {
			snprintf(db, sizeof(db), "%d", pool->database);
			argv[0] = "SELECT";
			argv[1] = db;
			r = command(c, 2, argv, NULL);
			if (r == NULL || r->type == REDIS_REPLY_ERROR) {
				mxg_fail(err, MXG_EIO, "SELECT %s: %s", db,
				    r ? r->str : c->errstr);
				goto fail_reply;
			}
			freeReplyObject(r);
		}
		return c;
fail_reply:
		if (r != NULL)
			freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	return c;
}

/* A context for one command: an idle one (*reused set) or a new one. */
static redisContext *
borrow(struct redis_pool *pool, bool *reused, char *err)
{
	redisContext *c = NULL;

	*reused = false;
	pthread_mutex_lock(&pool->lock);
	if (pool->down && mxg_now_ms() < pool->retry_at_ms) {
		pthread_mutex_unlock(&pool->lock);
		mxg_fail(err, MXG_EIO, "redis is down (retrying shortly)");
		return NULL;
	}
	if (pool->nidle > 0) {
		c = pool->idle[--pool->nidle];
		*reused = true;
	}
	pthread_mutex_unlock(&pool->lock);
	if (c == NULL && (c = connect_one(pool, err)) == NULL)
		pool_failed(pool, err);
	return c;
}

/* After Redis restarted, every idle context is dead: drop them all. */
static void
drop_idle(struct redis_pool *pool)
{
	redisContext *dead[REDIS_POOL_IDLE_MAX];
	int n;

	pthread_mutex_lock(&pool->lock);
	n = pool->nidle;
	memcpy(dead, pool->idle, (size_t)n * sizeof(*dead));
	pool->nidle = 0;
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < n; i++)
		redisFree(dead[i]);
}

static void
give_back(struct redis_pool *pool, redisContext *c)
{
	if (c->err) {
		redisFree(c);
		return;
	}
	pthread_mutex_lock(&pool->lock);
	if (pool->nidle < REDIS_POOL_IDLE_MAX) {
		pool->idle[pool->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&pool->lock);
	if (c != NULL)
		redisFree(c);
}

/* A reply or NULL with err; an error reply is returned as is when
 * keep_errors, else freed and turned into err. */
static redisReply *
run(struct redis_pool *pool, redisContext *c, int argc, const char **argv,
    const size_t *argvlen, bool keep_errors, char *err)
{
	redisReply *r = command(c, argc, argv, argvlen);

	if (r == NULL) {
		mxg_fail(err, MXG_EIO, "%s", c->err ? c->errstr :
		    "no reply");
		return NULL;
	}
	pool_succeeded(pool);
	if (r->type == REDIS_REPLY_ERROR && !keep_errors) {
		mxg_fail(err, MXG_EIO, "error reply: %.200s", r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/*
 * Runs one command, or a script (when script is not NULL). A pooled
 * context that fails at once is most likely from before a Redis
 * restart: the idle ones are dropped and the command is tried once more
 * on a new connection before Redis counts as down.
 */
static redisReply *run_script_on(struct redis_pool *pool, redisContext *c,
    struct redis_script *script, int nkeys, const char **argv,
    const size_t *argvlen, int argc, char *err);

static redisReply *
attempt_twice(struct redis_pool *pool, struct redis_script *script,
    int nkeys, const char **argv, const size_t *argvlen, int argc, char *err)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused;
		redisContext *c = borrow(pool, &reused, err);
		redisReply *r;

		if (c == NULL)
			return NULL;
		r = script ? run_script_on(pool, c, script, nkeys, argv,
		    argvlen, argc, err) : run(pool, c, argc, argv, argvlen,
		    false, err);
		bool broken = c->err != 0;
		give_back(pool, c);
		if (!broken)
			return r;
		if (r != NULL)
			freeReplyObject(r);
		if (!reused || attempt == 1) {
			pool_failed(pool, err);
			return NULL;
		}
		drop_idle(pool);
	}
	return NULL;
}

/* What a check asked for, counted once in the metrics: ok or error,
 * and the time it waited, connecting and retrying included. */
static redisReply *
run_with_retry(struct redis_pool *pool, struct redis_script *script,
    int nkeys, const char **argv, const size_t *argvlen, int argc, char *err)
{
	struct timespec start, end;
	redisReply *r;

	clock_gettime(CLOCK_MONOTONIC, &start);
	r = attempt_twice(pool, script, nkeys, argv, argvlen, argc, err);
	clock_gettime(CLOCK_MONOTONIC, &end);
	metrics_redis_command(r != NULL, (double)(end.tv_sec - start.tv_sec) +
	    (double)(end.tv_nsec - start.tv_nsec) / 1e9);
	return r;
}

redisReply *
redis_run_command(struct redis_pool *pool, const char **argv,
    const size_t *argvlen, int argc, char *err)
{
	return run_with_retry(pool, NULL, 0, argv, argvlen, argc, err);
}

static bool
load_script(struct redis_pool *pool, redisContext *c,
    struct redis_script *script, char *err)
{
	const char *argv[3] = {"SCRIPT", "LOAD", script->source};
	redisReply *r = run(pool, c, 3, argv, NULL, false, err);

	if (r == NULL)
		return false;
	if (r->type != REDIS_REPLY_STRING || r->len != 40) {
		mxg_fail(err, MXG_EIO, "SCRIPT LOAD gave no SHA1");
		freeReplyObject(r);
		return false;
	}
	pthread_mutex_lock(&script->lock);
	memcpy(script->sha, r->str, 40);
	script->sha[40] = '\0';
	pthread_mutex_unlock(&script->lock);
	freeReplyObject(r);
	return true;
}

redisReply *
redis_run_script(struct redis_pool *pool, struct redis_script *script,
    int nkeys, const char **argv, const size_t *argvlen, int argc,
    char *err)
{
	if (argc < 0 || nkeys < 0 || nkeys > argc) {
		mxg_fail(err, MXG_EINVAL, "bad script arguments");
		return NULL;
	}
	return run_with_retry(pool, script, nkeys, argv, argvlen, argc, err);
}

static redisReply *
run_script_on(struct redis_pool *pool, redisContext *c,
    struct redis_script *script, int nkeys, const char **argv,
    const size_t *argvlen, int argc, char *err)
{
	redisReply *r = NULL;
	char sha[41], nkeys_text[16];
	/* EVALSHA, the SHA, the key count, then argv: on the stack for the
	 * usual few, else on the heap (a rate limit decision may touch a
	 * bucket per rule and recipient). */
	const char *full_stack[32], **full = full_stack;
	size_t fulllen_stack[32], *fulllen = fulllen_stack;

	if (argc + 3 > 32) {
		full = mxg_calloc((size_t)argc + 3, sizeof(*full));
		fulllen = mxg_calloc((size_t)argc + 3, sizeof(*fulllen));
	}

	snprintf(nkeys_text, sizeof(nkeys_text), "%d", nkeys);
	mxg_fail(err, MXG_EIO, "the script could not be loaded");
	for (int attempt = 0; attempt < 4; attempt++) {
		pthread_mutex_lock(&script->lock);
		memcpy(sha, script->sha, sizeof(sha));
		pthread_mutex_unlock(&script->lock);
		if (sha[0] == '\0') {
			if (!load_script(pool, c, script, err))
				break;
			continue;
		}
		full[0] = "EVALSHA";
		full[1] = sha;
		full[2] = nkeys_text;
		fulllen[0] = 7;
		fulllen[1] = 40;
		fulllen[2] = strlen(nkeys_text);
		for (int i = 0; i < argc; i++) {
			full[i + 3] = argv[i];
			fulllen[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
		}
		r = run(pool, c, argc + 3, full, fulllen, true, err);
		if (r == NULL)
			break;
		if (r->type == REDIS_REPLY_ERROR &&
		    strncmp(r->str, "NOSCRIPT", 8) == 0) {
			/* Redis restarted or SCRIPT FLUSH: load again. */
			freeReplyObject(r);
			r = NULL;
			pthread_mutex_lock(&script->lock);
			script->sha[0] = '\0';
			pthread_mutex_unlock(&script->lock);
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			mxg_fail(err, MXG_EIO, "script error: %.200s", r->str);
			freeReplyObject(r);
			r = NULL;
		}
		break;
	}
	if (full != full_stack) {
		free(full);
		free(fulllen);
	}
	return r;
}
