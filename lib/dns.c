#include "dns.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "mxg.h"

struct dns_resolver {
	struct ub_ctx *ctx;
	long timeout_ms;
	pthread_t thread;
	int stop_pipe[2];	/* written to end the dispatch thread */
};

/*
 * A query is shared by the thread that waits for it and libunbound's
 * callback, which runs on the dispatch thread. Whoever finishes with it
 * last frees it: the waiter once it has the answer, or the callback when
 * the waiter gave up (abandoned) and the cancel came too late.
 */
struct dns_query {
	struct dns_resolver *res;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	bool done;
	bool abandoned;
	bool in_flight;
	int async_id;
	int ub_err;
	struct ub_result *result;
	struct dns_answer answer;
	/* Monotonic: sent, and answered (or failed to send), for metrics. */
	struct timespec sent_at, done_at;
};

/* Zones libunbound answers from its own built-in data (RFC 6761 names,
 * AS112 reverse zones); with an explicit nameserver they must reach it. */
static const char *const builtin_zones[] = {
	"test.", "invalid.", "onion.", "home.arpa.", "resolver.arpa.",
	"service.arpa.", "local.", "10.in-addr.arpa.", "16.172.in-addr.arpa.",
	"17.172.in-addr.arpa.", "18.172.in-addr.arpa.", "19.172.in-addr.arpa.",
	"20.172.in-addr.arpa.", "21.172.in-addr.arpa.", "22.172.in-addr.arpa.",
	"23.172.in-addr.arpa.", "24.172.in-addr.arpa.", "25.172.in-addr.arpa.",
	"26.172.in-addr.arpa.", "27.172.in-addr.arpa.", "28.172.in-addr.arpa.",
	"29.172.in-addr.arpa.", "30.172.in-addr.arpa.", "31.172.in-addr.arpa.",
	"168.192.in-addr.arpa.", "0.in-addr.arpa.", "254.169.in-addr.arpa.",
	"2.0.192.in-addr.arpa.", "100.51.198.in-addr.arpa.",
	"113.0.203.in-addr.arpa.", "255.255.255.255.in-addr.arpa.",
	"127.in-addr.arpa.", "d.f.ip6.arpa.", "8.e.f.ip6.arpa.",
	"9.e.f.ip6.arpa.", "a.e.f.ip6.arpa.", "b.e.f.ip6.arpa.",
	"8.b.d.0.1.0.0.2.ip6.arpa.",
	"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
	"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
};

static void *
dispatch_thread(void *arg)
{
	struct dns_resolver *res = arg;
	struct pollfd fds[2];

	fds[0].fd = ub_fd(res->ctx);
	fds[0].events = POLLIN;
	fds[1].fd = res->stop_pipe[0];
	fds[1].events = POLLIN;
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_msg(NULL, LOG_LEVEL_ERR, "dns: poll: %s",
			    strerror(errno));
			break;
		}
		if (fds[1].revents)
			break;
		if (fds[0].revents)
			ub_process(res->ctx);
	}
	return NULL;
}

static int
configure_servers(struct ub_ctx *ctx, const char *list, char *err)
{
	char *copy = mxg_strdup(list), *save = NULL;
	int rc, n = 0;

	for (char *tok = strtok_r(copy, " ,\t", &save); tok != NULL;
	    tok = strtok_r(NULL, " ,\t", &save)) {
		char *at = strchr(tok, '@');
		if (at != NULL) {
			char *end;
			long port = strtol(at + 1, &end, 10);

			if (end == at + 1 || *end != '\0' || port < 1 ||
			    port > 65535) {
				mxg_fail(err, MXG_EINVAL, "dns: nameserver '%s': "
				    "port must be 1-65535", tok);
				free(copy);
				return MXG_EINVAL;
			}
		}
		if ((rc = ub_ctx_set_fwd(ctx, tok)) != 0) {
			mxg_fail(err, MXG_EINVAL, "dns: nameserver '%s': %s", tok,
			    ub_strerror(rc));
			free(copy);
			return MXG_EINVAL;
		}
		n++;
	}
	free(copy);
	if (n == 0)
		return mxg_fail(err, MXG_EINVAL, "dns: nameserver is empty");
	/* A server that stopped answering for a while is marked down in
	 * libunbound's infrastructure cache; without probing it again, mail
	 * would keep failing for minutes after it came back. */
	ub_ctx_set_option(ctx, "infra-keep-probing:", "yes");
	ub_ctx_set_option(ctx, "infra-host-ttl:", "30");
	for (size_t i = 0; i < sizeof(builtin_zones) / sizeof(*builtin_zones); i++)
		ub_ctx_zone_remove(ctx, builtin_zones[i]);
	return MXG_OK;
}

int
dns_resolver_new(const struct config *cfg, struct dns_resolver **out,
    char *err)
{
	struct dns_resolver *res;
	int rc;

	*out = NULL;
	res = mxg_calloc(1, sizeof(*res));
	res->timeout_ms = cfg->dns.timeout_ms;
	res->ctx = ub_ctx_create();
	if (res->ctx == NULL) {
		free(res);
		return mxg_fail(err, MXG_ELIB, "dns: ub_ctx_create failed");
	}
	/* Threads, not a forked process; this must come before anything
	 * that finalises the context (zone changes do). */
	if ((rc = ub_ctx_async(res->ctx, 1)) != 0)
		rc = mxg_fail(err, MXG_ELIB, "dns: ub_ctx_async: %s",
		    ub_strerror(rc));
	else if (cfg->dns.nameserver != NULL) {
		rc = configure_servers(res->ctx, cfg->dns.nameserver, err);
	} else if ((rc = ub_ctx_resolvconf(res->ctx, NULL)) != 0) {
		/* No resolv.conf: libunbound then resolves from the root,
		 * which is still a working resolver. */
		log_msg(NULL, LOG_LEVEL_WARNING, "dns: /etc/resolv.conf: %s; "
		    "resolving from the root servers", ub_strerror(rc));
		rc = 0;
	}
	if (rc == 0 && pipe(res->stop_pipe) < 0)
		rc = mxg_fail(err, MXG_ELIB, "dns: pipe: %s", strerror(errno));
	if (rc != 0) {
		ub_ctx_delete(res->ctx);
		free(res);
		return rc;
	}
	/* ub_fd() finalises the context; from here on it is set. */
	if (ub_fd(res->ctx) < 0 ||
	    pthread_create(&res->thread, NULL, dispatch_thread, res) != 0) {
		close(res->stop_pipe[0]);
		close(res->stop_pipe[1]);
		ub_ctx_delete(res->ctx);
		free(res);
		return mxg_fail(err, MXG_ELIB, "dns: cannot start resolver");
	}
	*out = res;
	return MXG_OK;
}

void
dns_resolver_free(struct dns_resolver *res)
{
	if (res == NULL)
		return;
	if (write(res->stop_pipe[1], "x", 1) < 0)
		log_msg(NULL, LOG_LEVEL_WARNING, "dns: stop: %s", strerror(errno));
	pthread_join(res->thread, NULL);
	close(res->stop_pipe[0]);
	close(res->stop_pipe[1]);
	ub_ctx_delete(res->ctx);
	free(res);
}

long
dns_resolver_timeout_ms(const struct dns_resolver *res)
{
	return res->timeout_ms;
}

static void
query_destroy(struct dns_query *q)
{
	if (q->result != NULL)
		ub_resolve_free(q->result);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->done_cond);
	free(q);
}

static void
query_callback(void *arg, int err, struct ub_result *result)
{
	struct dns_query *q = arg;
	bool abandoned;

	pthread_mutex_lock(&q->lock);
	q->ub_err = err;
	q->result = result;
	clock_gettime(CLOCK_MONOTONIC, &q->done_at);
	q->done = true;
	q->in_flight = false;
	abandoned = q->abandoned;
	pthread_cond_signal(&q->done_cond);
	pthread_mutex_unlock(&q->lock);
	if (abandoned)
		query_destroy(q);
}

struct dns_query *
dns_query_start(struct dns_resolver *res, const char *name, int rrtype)
{
	struct dns_query *q = mxg_calloc(1, sizeof(*q));
	pthread_condattr_t attr;
	int rc;

	q->res = res;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->done_cond, &attr);
	pthread_condattr_destroy(&attr);

	q->in_flight = true;
	clock_gettime(CLOCK_MONOTONIC, &q->sent_at);
	q->done_at = q->sent_at;
	rc = ub_resolve_async(res->ctx, name, rrtype, 1 /* IN */, q,
	    query_callback, &q->async_id);
	if (rc != 0) {
		q->in_flight = false;
		q->done = true;
		q->ub_err = rc;
	}
	return q;
}

static enum dns_status
result_status(struct dns_query *q)
{
	struct ub_result *r = q->result;

	if (q->ub_err == UB_SYNTAX)
		return DNS_PERMFAIL;
	if (q->ub_err != 0 || r == NULL)
		return DNS_TEMPFAIL;
	if (r->rcode == 3 || r->nxdomain)
		return DNS_NXDOMAIN;
	if (r->rcode != 0)
		return DNS_TEMPFAIL;
	if (!r->havedata)
		return DNS_NODATA;
	q->answer.data = r->data;
	q->answer.len = r->len;
	for (q->answer.count = 0; r->data[q->answer.count] != NULL;
	    q->answer.count++)
		;
	q->answer.packet = r->answer_packet;
	q->answer.packet_len = r->answer_len;
	q->answer.ttl = r->ttl;
	return DNS_OK;
}

static double
seconds_between(const struct timespec *from, const struct timespec *to)
{
	return (double)(to->tv_sec - from->tv_sec) +
	    (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}

/* Every query's outcome is known here, once: each is counted in the
 * metrics with its time from sending to answer (or to the deadline). */
enum dns_status
dns_query_wait(struct dns_query *q, long long deadline_ms,
    const struct dns_answer **answer)
{
	struct timespec until, now;
	enum dns_status status;

	*answer = NULL;
	/* The deadline is on the monotonic clock the condition uses. */
	until.tv_sec = deadline_ms / 1000;
	until.tv_nsec = (deadline_ms % 1000) * 1000000;
	pthread_mutex_lock(&q->lock);
	while (!q->done) {
		if (pthread_cond_timedwait(&q->done_cond, &q->lock, &until) ==
		    ETIMEDOUT)
			break;
	}
	if (!q->done) {
		pthread_mutex_unlock(&q->lock);
		clock_gettime(CLOCK_MONOTONIC, &now);
		metrics_dns_query(DNS_TEMPFAIL, seconds_between(&q->sent_at,
		    &now));
		return DNS_TEMPFAIL;
	}
	status = result_status(q);
	now = q->done_at;
	pthread_mutex_unlock(&q->lock);
	metrics_dns_query(status, seconds_between(&q->sent_at, &now));
	if (status == DNS_OK)
		*answer = &q->answer;
	return status;
}

void
dns_query_free(struct dns_query *q)
{
	bool in_flight;

	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	in_flight = q->in_flight;
	pthread_mutex_unlock(&q->lock);
	/* ub_cancel succeeds only while libunbound still holds the query;
	 * then the callback never runs. Otherwise the callback runs or has
	 * run, and whichever of us comes second frees the query. No lock of
	 * ours is held across ub_cancel, which takes libunbound's own. */
	if (in_flight && ub_cancel(q->res->ctx, q->async_id) != 0) {
		pthread_mutex_lock(&q->lock);
		if (!q->done) {
			q->abandoned = true;
			pthread_mutex_unlock(&q->lock);
			return;
		}
		pthread_mutex_unlock(&q->lock);
	}
	query_destroy(q);
}

enum dns_status
dns_lookup(struct dns_resolver *res, const char *name, int rrtype,
    struct dns_query **q, const struct dns_answer **answer)
{
	*q = dns_query_start(res, name, rrtype);
	return dns_query_wait(*q, mxg_now_ms() + res->timeout_ms, answer);
}

const char *
dns_status_name(enum dns_status status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NODATA:
		return "nodata";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_PERMFAIL:
		return "permfail";
	}
	return "?";
}

int
dns_name_to_text(const unsigned char *data, size_t len, char *out,
    size_t outlen)
{
	size_t i = 0, o = 0;

	while (i < len) {
		size_t label = data[i++];

		if (label == 0) {
			if (o == 0) {
				if (outlen < 2)
					return -1;
				out[o++] = '.';
			}
			out[o] = '\0';
			return 0;
		}
		if (label > 63 || i + label > len)
			return -1;
		if (o > 0) {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '.';
		}
		for (size_t k = 0; k < label; k++) {
			unsigned char c = data[i + k];

			if (o + 4 >= outlen)
				return -1;
			/* Dots and odd bytes inside a label are escaped, so
			 * the text cannot be read back as other labels. */
			if (c == '.' || c == '\\' || c <= 32 || c >= 127)
				o += (size_t)snprintf(out + o, outlen - o,
				    "\\%03u", c);
			else
				out[o++] = (char)c;
		}
		i += label;
	}
	return -1;
}
