/*
 * mxguard-policy - the Postfix SMTPD access policy delegation server
 * (check_policy_service), on the same engine as the milter.
 *
 *	mxguard-policy [-f] [-c FILE]
 *
 * Postfix asks once per recipient (protocol_state=RCPT) with the client,
 * HELO, sender and recipient; this server fills a struct message from
 * those attributes, runs the engine's stages up to RCPT (SPF at MAIL,
 * greylisting and rate limits at RCPT: the same checks, Redis and keys
 * as the milter) and turns what the engine decided into one action:
 *
 *	a forced outcome	the verdict's reply: "550 5.7.23 SPF: ..."
 *				or "451 4.4.3 ..."
 *	the recipient refused	"DEFER_IF_PERMIT 4.7.1 Greylisted, ..." for
 *				a soft refusal (engine.h), so that a later
 *				reject of the restriction list still wins;
 *				any other its reply as it is ("450 4.7.1
 *				Rate limit exceeded for ...", "550 ...")
 *	[spf] received_spf	"PREPEND Received-SPF: ...", the header the
 *				engine writes, once per message (instance)
 *	otherwise		"DUNNO"
 *
 * protocol_state=CONNECT (check_policy_service in
 * smtpd_client_restrictions with smtpd_delay_reject = no) runs the
 * CONNECT stage: connection rate limits. END-OF-MESSAGE
 * (smtpd_end_of_data_restrictions) runs the byte rate limits alone, on
 * the `size` attribute: this server never sees the content. Any other
 * protocol_state gets DUNNO. This file decides nothing itself: it
 * translates attributes into a message and the verdict into actions.
 *
 * Threads: one per connection (up to [policy] max_connections), each with
 * its own message and scan; the engine is shared. The main thread accepts
 * and takes signals through a signalfd: SIGTERM and SIGINT stop the
 * server (requests in flight are answered first), SIGHUP and SIGUSR1
 * reload the config and rule files (lib/snapshot.h): a connection moves
 * to the new snapshot at its next message (a request with a new
 * instance), never in the middle of one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/config.h"
#include "../lib/daemon.h"
#include "../lib/engine.h"
#include "../lib/log.h"
#include "../lib/message.h"
#include "../lib/metrics.h"
#include "../lib/mxg.h"
#include "../lib/netlist.h"
#include "../lib/ratelimit.h"
#include "../lib/snapshot.h"
#include "../lib/strbuf.h"
#include "policy_request.h"

#ifndef MXG_SYSCONFDIR
#define MXG_SYSCONFDIR "/etc/mxguard"
#endif

/* After SIGTERM: how long a half-read request may take to complete, and
 * how long requests in flight (DNS, Redis) may take to be answered. */
#define SHUTDOWN_GRACE_MS 5000
#define SHUTDOWN_WAIT_MS 30000
/* A bad request is read to its end to stay in step with the client, but
 * not forever: past this many times max_request, the connection closes. */
#define DISCARD_FACTOR 64
#define READ_CHUNK 16384

struct server {
	/* Read at start: what only a restart changes (listen, pid file). */
	struct config *boot_cfg;
	const char *pidfile;
	int listen_fd;
	char *unix_path;	/* our socket file, removed at exit */
	int stop_pipe[2];	/* closing [1] wakes every connection */
	pthread_mutex_t lock;
	pthread_cond_t drained;
	int nconnections;
	unsigned long nextid;
};

static struct server server = {
	.listen_fd = -1,
	.stop_pipe = {-1, -1},
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

struct connection {
	int fd;
	unsigned long id;
	char peer[INET6_ADDRSTRLEN + 16];
	struct policy_reader *reader;
	struct snapshot *snap;		/* config and engine in use */
	char *instance;			/* of the last request */
	struct message *msg;		/* made at the first RCPT request */
	struct scan *scan;
	char *prepended_instance;	/* the last message given Received-SPF */
};

/* Untrusted text goes into log lines and replies: one printable line. */
static void
make_printable(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 32 || s[i] == 127)
			s[i] = '?';
}

static const char *
attr(const struct policy_request *req, enum policy_attr a)
{
	return req->attr[a] != NULL && *req->attr[a] != '\0' ?
	    req->attr[a] : NULL;
}

/* ---------------------------------------------------------- decisions */

static void
fill_message(struct connection *conn, const struct policy_request *req)
{
	struct message *msg = conn->msg;
	const char *addr = attr(req, POLICY_ATTR_CLIENT_ADDRESS);
	const char *name = attr(req, POLICY_ATTR_CLIENT_NAME);
	const char *value;

	message_reset(msg);
	scan_reset(conn->scan);
	/* Only the verified name: a PTR name alone (reverse_client_name) is
	 * the client's own claim and must not match skip_hostnames. */
	if (name != NULL && strcmp(name, "unknown") == 0)
		name = NULL;
	if (message_set_client(msg, addr, name) < 0) {
		char shown[64];

		snprintf(shown, sizeof(shown), "%s", addr);
		make_printable(shown, strlen(shown));
		log_msg(NULL, LOG_LEVEL_NOTICE, "client_address=%s is not an "
		    "address; judged as unknown", shown);
		message_set_client(msg, NULL, name);
	}
	message_set_helo(msg, attr(req, POLICY_ATTR_HELO_NAME));
	if ((value = attr(req, POLICY_ATTR_QUEUE_ID)) != NULL) {
		message_set_queue_id(msg, value);
		make_printable(msg->queue_id, strlen(msg->queue_id));
	}
	if (req->attr[POLICY_ATTR_SENDER] != NULL)
		message_set_mail_from(msg, req->attr[POLICY_ATTR_SENDER]);
	if ((value = attr(req, POLICY_ATTR_SASL_USERNAME)) != NULL)
		msg->auth_user = mxg_strdup(value);
	if ((value = attr(req, POLICY_ATTR_RECIPIENT)) != NULL)
		message_add_rcpt(msg, value);
	if ((value = attr(req, POLICY_ATTR_INSTANCE)) != NULL)
		msg->instance = mxg_strdup(value);
	if ((value = attr(req, POLICY_ATTR_SIZE)) != NULL) {
		char *end;
		unsigned long long size = strtoull(value, &end, 10);

		if (*end == '\0' && value[0] != '-' && size <= SIZE_MAX)
			msg->size = (size_t)size;
	}
}

/* protocol_state=CONNECT, RCPT or END-OF-MESSAGE (stage): the engine
 * at that stage, its answer as an action. */
static void
decide(struct connection *conn, const struct policy_request *req,
    enum check_stage stage, struct strbuf *action)
{
	const char *instance = attr(req, POLICY_ATTR_INSTANCE);
	const struct config *cfg;
	struct engine *engine;
	struct scan *scan;
	struct verdict *v;

	/* After a reload, the next message moves to the new snapshot. */
	bool new_message = instance == NULL || conn->instance == NULL ||
	    strcmp(instance, conn->instance) != 0;
	if (new_message && conn->snap->generation != snapshot_generation()) {
		scan_free(conn->scan);
		message_free(conn->msg);
		conn->scan = NULL;
		conn->msg = NULL;
		snapshot_release(conn->snap);
		conn->snap = snapshot_acquire();
	}
	free(conn->instance);
	conn->instance = instance != NULL ? mxg_strdup(instance) : NULL;
	cfg = conn->snap->cfg;
	engine = conn->snap->engine;
	if (conn->msg == NULL) {
		conn->msg = message_new(cfg->milter.header_limit,
		    cfg->milter.body_scan_limit);
		conn->scan = scan_new(engine, conn->msg);
	}
	scan = conn->scan;
	v = scan->verdict;
	fill_message(conn, req);

	if (stage == STAGE_EOM ? engine_run_check(engine, scan,
	    &ratelimit_size_check) : engine_run_stage(engine, scan, stage)) {
		verdict_decide(v, cfg);
		strbuf_puts(action, v->reply);
		return;
	}
	if (scan->rcpt_refused_now) {
		const struct rcpt_refusal *r = &scan->refused[scan->nrefused - 1];

		verdict_decide(v, cfg);
		/* DEFER_IF_PERMIT: a later reject in the restriction list
		 * (say, reject_unauth_destination) still wins. */
		if (!r->soft)
			strbuf_puts(action, r->reply);
		else
			strbuf_printf(action, "DEFER_IF_PERMIT %s %s",
			    r->enhanced, r->text);
		return;
	}
	/* Postfix asks once per recipient: one header per message. */
	if (stage == STAGE_RCPT && cfg->spf.received_spf &&
	    scan->spf.code != SPF_RES_NOT_CHECKED &&
	    (instance == NULL || conn->prepended_instance == NULL ||
	    strcmp(instance, conn->prepended_instance) != 0)) {
		struct strbuf value = STRBUF_INIT;

		if (engine_received_spf(engine, scan, &value)) {
			strbuf_printf(action, "PREPEND Received-SPF: %s",
			    value.data);
			strbuf_free(&value);
			free(conn->prepended_instance);
			conn->prepended_instance = instance ?
			    mxg_strdup(instance) : NULL;
			return;
		}
		strbuf_free(&value);
	}
	if (!scan->finished)
		verdict_decide(v, cfg);
	strbuf_puts(action, "DUNNO");
}

/* One request in, one action out (without "action="), one log line. */
static void
answer(struct connection *conn, const struct policy_request *req,
    struct strbuf *action)
{
	const char *state = attr(req, POLICY_ATTR_PROTOCOL_STATE);
	const char *request = attr(req, POLICY_ATTR_REQUEST);
	char shown[64];

	if (req->error != NULL) {
		log_msg(NULL, LOG_LEVEL_ERR, "client %s: bad request: %s "
		    "(line %zu; %zu lines, %zu bytes read); answered DUNNO",
		    conn->peer, req->error, req->error_line, req->nattributes,
		    req->bytes);
		strbuf_puts(action, "DUNNO");
		metrics_policy_request(NULL, NULL, action->data);
		return;
	}
	if (request == NULL || strcmp(request, "smtpd_access_policy") != 0) {
		snprintf(shown, sizeof(shown), "%s", request ? request : "");
		make_printable(shown, strlen(shown));
		log_msg(NULL, LOG_LEVEL_ERR, "client %s: bad request: "
		    "request=%s, not smtpd_access_policy; answered DUNNO",
		    conn->peer, shown);
		strbuf_puts(action, "DUNNO");
		metrics_policy_request(NULL, NULL, action->data);
		return;
	}
	enum check_stage stage = STAGE_COUNT;
	if (state != NULL && strcmp(state, "RCPT") == 0)
		stage = STAGE_RCPT;
	else if (state != NULL && strcmp(state, "CONNECT") == 0)
		stage = STAGE_CONNECT;
	else if (state != NULL && strcmp(state, "END-OF-MESSAGE") == 0)
		stage = STAGE_EOM;
	if (stage == STAGE_COUNT) {
		/* Nothing is judged at the other states. */
		if (log_enabled(LOG_LEVEL_DEBUG)) {
			snprintf(shown, sizeof(shown), "%s", state ? state : "");
			make_printable(shown, strlen(shown));
			log_msg(NULL, LOG_LEVEL_DEBUG, "client %s: "
			    "protocol_state=%s: DUNNO", conn->peer, shown);
		}
		strbuf_puts(action, "DUNNO");
		metrics_policy_request(NULL, NULL, action->data);
		return;
	}

	decide(conn, req, stage, action);
	make_printable(action->data, action->len);
	metrics_policy_request(conn->snap->engine, conn->scan, action->data);

	if (log_enabled(LOG_LEVEL_INFO)) {
		struct log_record rec = {.n = 0};
		const char *rcpt = req->attr[POLICY_ATTR_RECIPIENT];

		engine_summary_record(conn->scan, &rec);
		log_field(&rec, "rcpt", LOG_FIELD_ANGLE, "%s", rcpt ? rcpt : "");
		if (stage != STAGE_RCPT)
			log_field(&rec, "state", LOG_FIELD_PLAIN, "%s", state);
		log_field(&rec, "policy", LOG_FIELD_QUOTED, "%s", action->data);
		for (size_t i = 0; i < rec.n; i++)
			make_printable(rec.fields[i].value,
			    strlen(rec.fields[i].value));
		log_record_emit(conn->msg->queue_id ? conn->msg->queue_id :
		    "NOQUEUE", LOG_LEVEL_INFO, &rec);
		log_record_free(&rec);
	}
}

/* ---------------------------------------------------------- connections */

static bool
send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		data += n;
		len -= (size_t)n;
	}
	return true;
}

/* Answers every request complete in data; false: close the connection. */
static bool
serve_bytes(struct connection *conn, const char *data, size_t len)
{
	while (len > 0) {
		size_t used;
		enum policy_feed_status st = policy_reader_feed(conn->reader,
		    data, len, &used);

		data += used;
		len -= used;
		if (st == POLICY_CLOSE) {
			const struct policy_request *req =
			    policy_reader_request(conn->reader);

			log_msg(NULL, LOG_LEVEL_ERR, "client %s: bad request "
			    "(%s, line %zu) still has no end after %zu "
			    "bytes; connection closed",
			    conn->peer, req->error, req->error_line,
			    req->bytes);
			return false;
		}
		if (st == POLICY_NEED_MORE)
			return true;

		struct strbuf action = STRBUF_INIT, reply = STRBUF_INIT;
		answer(conn, policy_reader_request(conn->reader), &action);
		policy_reader_next(conn->reader);
		strbuf_printf(&reply, "action=%s\n\n", action.data);
		bool sent = send_all(conn->fd, reply.data, reply.len);
		strbuf_free(&action);
		strbuf_free(&reply);
		if (!sent) {
			log_msg(NULL, LOG_LEVEL_NOTICE, "client %s: cannot send "
			    "the answer: %s", conn->peer, strerror(errno));
			return false;
		}
	}
	return true;
}

static void
connection_free(struct connection *conn)
{
	close(conn->fd);
	policy_reader_free(conn->reader);
	scan_free(conn->scan);
	message_free(conn->msg);
	snapshot_release(conn->snap);
	free(conn->instance);
	free(conn->prepended_instance);
	free(conn);
}

static void *
connection_main(void *arg)
{
	struct connection *conn = arg;
	long idle_ms = conn->snap->cfg->policy.idle_timeout_ms;
	bool stopping = false;
	long long grace_until = 0;
	char buf[READ_CHUNK];

	metrics_connection(1);
	for (;;) {
		struct pollfd fds[2] = {
			{conn->fd, POLLIN, 0},
			{server.stop_pipe[0], POLLIN, 0},
		};
		int timeout = idle_ms <= 0 ? -1 :
		    idle_ms > INT_MAX ? INT_MAX : (int)idle_ms;

		if (stopping) {
			/* Between requests: done. In the middle of one: give
			 * it a moment to arrive, then answer it. */
			if (!policy_reader_pending(conn->reader))
				break;
			long long left = grace_until - mxg_now_ms();
			if (left <= 0) {
				log_msg(NULL, LOG_LEVEL_NOTICE, "client %s: "
				    "request still incomplete at shutdown; "
				    "closed", conn->peer);
				break;
			}
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}
		int rc = poll(fds, stopping ? 1 : 2, timeout);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_msg(NULL, LOG_LEVEL_ERR, "client %s: poll: %s",
			    conn->peer, strerror(errno));
			break;
		}
		if (rc == 0) {
			if (stopping)
				continue;
			log_msg(NULL, policy_reader_pending(conn->reader) ?
			    LOG_LEVEL_NOTICE : LOG_LEVEL_DEBUG, "client %s: "
			    "idle for %ld ms%s; closed", conn->peer, idle_ms,
			    policy_reader_pending(conn->reader) ?
			    " in the middle of a request" : "");
			break;
		}
		if (!stopping && fds[1].revents != 0) {
			stopping = true;
			grace_until = mxg_now_ms() + SHUTDOWN_GRACE_MS;
		}
		if (fds[0].revents == 0)
			continue;

		ssize_t n = recv(conn->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			log_msg(NULL, LOG_LEVEL_NOTICE, "client %s: read: %s",
			    conn->peer, strerror(errno));
			break;
		}
		if (n == 0) {
			if (policy_reader_pending(conn->reader))
				log_msg(NULL, LOG_LEVEL_NOTICE, "client %s: "
				    "closed in the middle of a request",
				    conn->peer);
			break;
		}
		if (!serve_bytes(conn, buf, (size_t)n))
			break;
	}
	connection_free(conn);
	metrics_connection(-1);

	pthread_mutex_lock(&server.lock);
	server.nconnections--;
	pthread_cond_broadcast(&server.drained);
	pthread_mutex_unlock(&server.lock);
	return NULL;
}

/* The peer as text, and whether [policy] allow lets it in. */
static bool
peer_allowed(const struct snapshot *snap, const struct sockaddr_storage *ss,
    char *peer, size_t peerlen)
{
	char addr[INET6_ADDRSTRLEN] = "";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		port = ntohs(sin6->sin6_port);
	} else {
		/* A unix socket: its file mode says who may connect. */
		snprintf(peer, peerlen, "unix:%s", server.unix_path);
		return true;
	}
	snprintf(peer, peerlen, "%s:%d", addr, port);

	struct message *probe = message_new(0, 0);
	bool ok = message_set_client(probe, addr, NULL) == 0 &&
	    netlist_contains(snap->extra, probe);
	message_free(probe);
	return ok;
}

static void
accept_one(void)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct connection *conn;
	char peer[INET6_ADDRSTRLEN + 16];
	int fd, max = server.boot_cfg->policy.max_connections;

	memset(&ss, 0, sizeof(ss));
	fd = accept4(server.listen_fd, (struct sockaddr *)&ss, &sslen,
	    SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_msg(NULL, LOG_LEVEL_ERR, "accept: %s",
			    strerror(errno));
			poll(NULL, 0, 100);	/* let connections end */
		}
		return;
	}
	/* The connection keeps the snapshot current at its start. */
	struct snapshot *snap = snapshot_acquire();
	const struct config *cfg = snap->cfg;
	if (!peer_allowed(snap, &ss, peer, sizeof(peer))) {
		log_msg(NULL, LOG_LEVEL_WARNING, "client %s is not in [policy] "
		    "allow; closed", peer);
		snapshot_release(snap);
		close(fd);
		return;
	}
	pthread_mutex_lock(&server.lock);
	if (max > 0 && server.nconnections >= max) {
		pthread_mutex_unlock(&server.lock);
		log_msg(NULL, LOG_LEVEL_WARNING, "client %s: already %d "
		    "connections ([policy] max_connections); closed", peer,
		    max);
		snapshot_release(snap);
		close(fd);
		return;
	}
	server.nconnections++;
	unsigned long id = ++server.nextid;
	pthread_mutex_unlock(&server.lock);

	/* A client that sends requests but never reads the answers must
	 * not hold a thread forever. */
	long idle_ms = cfg->policy.idle_timeout_ms;
	if (idle_ms > 0) {
		struct timeval tv = {idle_ms / 1000, (idle_ms % 1000) * 1000};
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}

	conn = mxg_calloc(1, sizeof(*conn));
	conn->fd = fd;
	conn->id = id;
	conn->snap = snap;
	snprintf(conn->peer, sizeof(conn->peer), "%s", peer);
	struct policy_limits limits = {
		.max_line = cfg->policy.max_line,
		.max_request = cfg->policy.max_request,
		.max_attributes = (size_t)cfg->policy.max_attributes,
	};
	limits.max_discard = limits.max_request > SIZE_MAX / DISCARD_FACTOR ?
	    SIZE_MAX : limits.max_request * DISCARD_FACTOR;
	conn->reader = policy_reader_new(&limits);

	pthread_attr_t attr;
	pthread_t thread;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&thread, &attr, connection_main, conn);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		log_msg(NULL, LOG_LEVEL_ERR, "client %s: no thread for it: %s; "
		    "closed", peer, strerror(rc));
		connection_free(conn);
		pthread_mutex_lock(&server.lock);
		server.nconnections--;
		pthread_mutex_unlock(&server.lock);
		return;
	}
	log_msg(NULL, LOG_LEVEL_DEBUG, "client %s: connection %lu", peer, id);
}

/* ---------------------------------------------------------- start, stop */

/* inet:PORT@HOST, inet6:PORT@HOST, inet:PORT (every address), unix:/PATH
 * or local:/PATH; the config loader has checked the syntax. */
static int
listen_open(const char *spec, char *err)
{
	int fd = -1, one = 1;

	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		const char *path = strchr(spec, ':') + 1;
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		if (strlen(path) >= sizeof(sun.sun_path))
			return mxg_fail(err, MXG_EINVAL, "%s: path too long",
			    spec);
		strcpy(sun.sun_path, path);
		int rc = daemon_unix_socket_prepare(path, err);
		if (rc != 0)
			return rc;
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
		    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
		    listen(fd, SOMAXCONN) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			return mxg_fail(err, MXG_EIO, "%s: %s", spec,
			    strerror(e));
		}
		/* [milter] socket_mode and group: Postfix's user must be
		 * able to connect. */
		if ((rc = daemon_unix_socket_finish(path, server.boot_cfg,
		    err)) != 0) {
			close(fd);
			return rc;
		}
		server.unix_path = mxg_strdup(path);
		server.listen_fd = fd;
		return MXG_OK;
	}

	bool v6 = strncmp(spec, "inet6:", 6) == 0;
	char *copy = mxg_strdup(strchr(spec, ':') + 1);
	char *at = strchr(copy, '@');
	const char *host = NULL;
	struct addrinfo hints, *res = NULL, *ai;
	int rc, e = 0;

	if (at != NULL) {
		*at = '\0';
		host = at + 1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = v6 ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, copy, &hints, &res)) != 0) {
		mxg_fail(err, MXG_EINVAL, "%s: %s", spec, gai_strerror(rc));
		free(copy);
		return MXG_EINVAL;
	}
	free(copy);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return mxg_fail(err, MXG_EIO, "%s: %s", spec, strerror(e));
	server.listen_fd = fd;
	return MXG_OK;
}

/* Waits for the connections to finish; false if some are still busy. */
static bool
drain_connections(void)
{
	struct timespec deadline;
	bool drained;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SHUTDOWN_WAIT_MS / 1000;
	pthread_mutex_lock(&server.lock);
	while (server.nconnections > 0)
		if (pthread_cond_timedwait(&server.drained, &server.lock,
		    &deadline) == ETIMEDOUT)
			break;
	drained = server.nconnections == 0;
	if (!drained)
		log_msg(NULL, LOG_LEVEL_WARNING, "%d connections still busy "
		    "after %d s; exiting without them", server.nconnections,
		    SHUTDOWN_WAIT_MS / 1000);
	pthread_mutex_unlock(&server.lock);
	return drained;
}

/* Accepts until SIGTERM or SIGINT. */
static void
serve(int sigfd)
{
	for (;;) {
		struct pollfd fds[2] = {
			{server.listen_fd, POLLIN, 0},
			{sigfd, POLLIN, 0},
		};

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_msg(NULL, LOG_LEVEL_ERR, "poll: %s", strerror(errno));
			return;
		}
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGTERM ||
				    si.ssi_signo == SIGINT) {
					log_msg(NULL, LOG_LEVEL_NOTICE, "%s: "
					    "stopping", strsignal(
					    (int)si.ssi_signo));
					return;
				}
				/* SIGHUP or SIGUSR1. */
				daemon_reload(server.pidfile);
			}
		}
		if (fds[0].revents & POLLIN)
			accept_one();
	}
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: mxguard-policy [-f] [-c FILE] [-p PIDFILE]\n"
	    "  -f          stay in the foreground, log to stderr\n"
	    "  -c FILE     config file (default %s/mxguard.conf)\n"
	    "  -p PIDFILE  pid file (overrides [policy] pidfile)\n",
	    MXG_SYSCONFDIR);
}

/* Each snapshot carries its parsed [policy] allow list. */
static int
prepare_snapshot(struct snapshot *snap, char *err)
{
	struct netlist *allow;
	char why[MXG_ERRLEN];

	if (netlist_parse(snap->cfg->policy.allow, &allow, why) != 0)
		return mxg_fail(err, MXG_EINVAL, "%s: [policy] allow: %s",
		    snap->cfg->path, why);
	snap->extra = allow;
	return MXG_OK;
}

static void
release_snapshot_extra(void *extra)
{
	netlist_free(extra);
}

int
main(int argc, char **argv)
{
	const char *config_path = MXG_SYSCONFDIR "/mxguard.conf";
	bool foreground = false;
	char err[MXG_ERRLEN];
	int opt, rc, sigfd;

	while ((opt = getopt(argc, argv, "fc:p:h")) != -1) {
		switch (opt) {
		case 'f': foreground = true; break;
		case 'c': config_path = optarg; break;
		case 'p': server.pidfile = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (config_load(config_path, &server.boot_cfg, err) != 0) {
		fprintf(stderr, "mxguard-policy: %s\n", err);
		return 2;
	}
	if (server.pidfile == NULL)
		server.pidfile = server.boot_cfg->policy.pidfile;
	log_init("mxguard-policy", foreground, server.boot_cfg->milter.log_level);
	metrics_init("policy");
	log_set_format(server.boot_cfg->log.format);
	signal(SIGPIPE, SIG_IGN);

	/* Listen first, so that a port in use is an error at start; until
	 * daemon_ready(), stderr is still the caller's. */
	if ((rc = listen_open(server.boot_cfg->policy.listen, err)) != 0 ||
	    (!foreground && (rc = daemon_detach(err)) != 0) ||
	    (rc = daemon_drop_privileges(server.boot_cfg, err)) != 0) {
		log_msg(NULL, LOG_LEVEL_ERR, "%s", err);
		fprintf(stderr, "mxguard-policy: %s\n", err);
		return rc == MXG_EINVAL ? 2 : 1;
	}
	fcntl(server.listen_fd, F_SETFL,
	    fcntl(server.listen_fd, F_GETFL) | O_NONBLOCK);

	/* Every thread (the engine's resolver thread included) inherits
	 * this mask, so the signals only ever arrive through sigfd. */
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	sigaddset(&signals, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	if ((sigfd = signalfd(-1, &signals, SFD_CLOEXEC)) < 0 ||
	    pipe2(server.stop_pipe, O_CLOEXEC) < 0) {
		log_msg(NULL, LOG_LEVEL_ERR, "signalfd or pipe: %s",
		    strerror(errno));
		return 1;
	}
	pthread_condattr_t cattr;
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&server.drained, &cattr);
	pthread_condattr_destroy(&cattr);

	/* Its HTTP thread, after the fork and with the signal mask. */
	if (server.boot_cfg->metrics.policy_listen != NULL &&
	    (rc = metrics_start(server.boot_cfg->metrics.policy_listen,
	    err)) != 0) {
		log_msg(NULL, LOG_LEVEL_ERR, "%s", err);
		fprintf(stderr, "mxguard-policy: %s\n", err);
		return rc == MXG_EINVAL ? 2 : 1;
	}

	/* The resolver thread must start after the fork. */
	if ((rc = snapshot_init(config_path, prepare_snapshot,
	    release_snapshot_extra, err)) != 0 || (server.pidfile != NULL &&
	    (rc = daemon_pidfile_write(server.pidfile, err)) != 0)) {
		log_msg(NULL, LOG_LEVEL_ERR, "%s", err);
		fprintf(stderr, "mxguard-policy: %s\n", err);
		return 2;
	}
	metrics_config_loaded(true);
	if (server.boot_cfg->greylist.enabled &&
	    server.boot_cfg->greylist.mode != GREYLIST_MODE_TRIPLET)
		log_msg(NULL, LOG_LEVEL_NOTICE, "[greylist] mode = score needs "
		    "the message content: this server does not greylist");

	log_msg(NULL, LOG_LEVEL_NOTICE, "listening on %s",
	    server.boot_cfg->policy.listen);
	daemon_ready();
	serve(sigfd);
	daemon_notify("STOPPING=1");

	/* Stop accepting; wake idle connections; answer what is in flight. */
	close(server.listen_fd);
	if (server.unix_path != NULL)
		unlink(server.unix_path);
	close(server.stop_pipe[1]);
	bool drained = drain_connections();
	metrics_stop();
	log_msg(NULL, LOG_LEVEL_NOTICE, "stopped");

	daemon_pidfile_remove(server.pidfile);
	if (!drained)
		return 1;	/* threads may still use the engine: no frees */
	snapshot_shutdown();
	close(server.stop_pipe[0]);
	close(sigfd);
	free(server.unix_path);
	config_free(server.boot_cfg);
	return 0;
}
