/*
 * mxguard-milter - the milter daemon.
 *
 * libmilter callbacks fill a struct message and drive the engine stage by
 * stage; this file decides nothing itself. It turns the verdict into
 * libmilter calls: a reply and SMFIS_REJECT/TEMPFAIL, or headers added
 * and removed at end of message.
 *
 * Threads: libmilter runs callbacks of one connection on any of its
 * worker threads, never two at once, so all per-connection state hangs
 * off smfi_getpriv (LIBRARY-NOTES.md).
 *
 * Reload: SIGUSR1 (libmilter's own signal thread takes SIGHUP, SIGINT
 * and SIGTERM as "stop"), handled by a thread of ours that builds a new
 * snapshot (lib/snapshot.h). Each transaction runs on the snapshot that
 * was current at its MAIL FROM; the next one picks up the new.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/config.h"
#include "../lib/daemon.h"
#include "../lib/engine.h"
#include "../lib/log.h"
#include "../lib/message.h"
#include "../lib/metrics.h"
#include "../lib/mxg.h"
#include "../lib/snapshot.h"
#include "../lib/strbuf.h"

#ifndef MXG_SYSCONFDIR
#define MXG_SYSCONFDIR "/etc/mxguard"
#endif

/* The config read at start: the socket, user and pid file, which only a
 * restart changes. Everything else comes from a connection's snapshot. */
static struct config *boot_config;

/* The actions at end of message: headers added, changed, quarantine. */
#define MILTER_ACTIONS (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE)

struct connection {
	unsigned long noreply;	/* SMFIP_NR_* the MTA agreed to */
	struct snapshot *snap;	/* of the transaction in progress */
	struct message *msg;
	struct scan *scan;
	bool logged;		/* the summary line of this transaction */
};

/* A new transaction runs on the current snapshot: after a reload, the
 * connection lets go of the old one (freed by its last user). */
static void
connection_follow_reload(struct connection *conn)
{
	if (conn->snap->generation == snapshot_generation())
		return;
	scan_free(conn->scan);
	snapshot_release(conn->snap);
	conn->snap = snapshot_acquire();
	conn->msg->header_limit = conn->snap->cfg->milter.header_limit;
	conn->msg->body_limit = conn->snap->cfg->milter.body_scan_limit;
	conn->scan = scan_new(conn->snap->engine, conn->msg);
}

static struct connection *
connection_get(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

static void
take_macros(SMFICTX *ctx, struct message *msg)
{
	const char *value;

	if (msg->queue_id == NULL && (value = smfi_getsymval(ctx, "i")) != NULL)
		message_set_queue_id(msg, value);
	if (msg->mta_name == NULL && (value = smfi_getsymval(ctx, "j")) != NULL)
		msg->mta_name = mxg_strdup(value);
	if (msg->auth_user == NULL &&
	    (value = smfi_getsymval(ctx, "{auth_authen}")) != NULL)
		msg->auth_user = mxg_strdup(value);
}

static void
log_summary(struct connection *conn)
{
	struct log_record rec = {.n = 0};

	if (conn->logged)
		return;
	conn->logged = true;
	metrics_message(conn->snap->engine, conn->scan);
	engine_summary_record(conn->scan, &rec);
	log_record_emit(conn->msg->queue_id ? conn->msg->queue_id : "NOQUEUE",
	    LOG_LEVEL_INFO, &rec);
	log_record_free(&rec);
}

/* libmilter treats reply text as a printf format: a '%' must be "%%" or
 * the MTA drops it (smfi_setreply(3)). Cut at outlen. */
static char *
escape_percent(const char *text, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = text; *p && o + 3 < outlen; p++) {
		if (*p == '%')
			out[o++] = '%';
		out[o++] = *p;
	}
	out[o] = '\0';
	return out;
}

/* Answers with the forced outcome: the reply, then the status. */
static sfsistat
reply_forced(SMFICTX *ctx, struct connection *conn)
{
	struct verdict *v = conn->scan->verdict;
	char text[2048];

	verdict_decide(v, conn->snap->cfg);
	log_summary(conn);
	if (smfi_setreply(ctx, v->reply_code, v->reply_enhanced,
	    escape_percent(v->reply_text, text, sizeof(text))) != MI_SUCCESS)
		log_msg(conn->msg->queue_id, LOG_LEVEL_WARNING,
		    "smfi_setreply refused \"%s\"", v->reply);
	return v->action == VERDICT_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

static sfsistat
run_stage(SMFICTX *ctx, struct connection *conn, enum check_stage stage)
{
	if (engine_run_stage(conn->snap->engine, conn->scan, stage))
		return reply_forced(ctx, conn);
	return SMFIS_CONTINUE;
}

/*
 * Steps that never answer anything but "continue" (HELO, each header,
 * each body chunk) are asked for without a reply: the MTA then sends
 * them without waiting, which saves a round trip per header and per
 * chunk, about half of what a milter costs Postfix per message. Steps
 * we have no callback for are not sent at all.
 */
#define NOREPLY_WANTED (SMFIP_NR_HELO | SMFIP_NR_HDR | SMFIP_NR_BODY)

static sfsistat
on_negotiate(SMFICTX *ctx, unsigned long actions, unsigned long steps,
    unsigned long unused2, unsigned long unused3, unsigned long *want_actions,
    unsigned long *want_steps, unsigned long *want2, unsigned long *want3)
{
	struct connection *conn = mxg_calloc(1, sizeof(*conn));

	(void)unused2;
	(void)unused3;
	conn->noreply = steps & NOREPLY_WANTED;
	smfi_setpriv(ctx, conn);
	*want_actions = actions & MILTER_ACTIONS;
	*want_steps = (steps & (SMFIP_NOUNKNOWN | SMFIP_NODATA)) |
	    conn->noreply;
	*want2 = 0;
	*want3 = 0;
	return SMFIS_CONTINUE;
}

/* What a step that never refuses returns, as negotiated. */
static sfsistat
no_reply(const struct connection *conn, unsigned long step)
{
	return (conn->noreply & step) != 0 ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat
on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct connection *conn = connection_get(ctx);
	char addr[INET6_ADDRSTRLEN] = "";

	if (conn == NULL)	/* an MTA that does not negotiate */
		conn = mxg_calloc(1, sizeof(*conn));

	metrics_connection(1);
	conn->snap = snapshot_acquire();
	conn->msg = message_new(conn->snap->cfg->milter.header_limit,
	    conn->snap->cfg->milter.body_scan_limit);
	conn->scan = scan_new(conn->snap->engine, conn->msg);
	smfi_setpriv(ctx, conn);

	if (hostaddr != NULL && hostaddr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)hostaddr)->sin_addr,
		    addr, sizeof(addr));
	else if (hostaddr != NULL && hostaddr->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((struct sockaddr_in6 *)(void *)hostaddr)->sin6_addr, addr,
		    sizeof(addr));
	if (message_set_client(conn->msg, *addr ? addr : NULL, hostname) < 0)
		message_set_client(conn->msg, NULL, hostname);
	take_macros(ctx, conn->msg);
	return run_stage(ctx, conn, STAGE_CONNECT);
}

static sfsistat
on_helo(SMFICTX *ctx, char *helo)
{
	struct connection *conn = connection_get(ctx);

	message_set_helo(conn->msg, helo);
	return no_reply(conn, SMFIP_NR_HELO);
}

static sfsistat
on_envfrom(SMFICTX *ctx, char **argv)
{
	struct connection *conn = connection_get(ctx);

	/* A new transaction on this connection starts clean. */
	message_reset(conn->msg);
	scan_reset(conn->scan);
	connection_follow_reload(conn);
	conn->logged = false;
	take_macros(ctx, conn->msg);
	message_set_mail_from(conn->msg, argv[0]);
	engine_run_stage(conn->snap->engine, conn->scan, STAGE_HELO);
	return run_stage(ctx, conn, STAGE_MAIL);
}

static sfsistat
on_envrcpt(SMFICTX *ctx, char **argv)
{
	struct connection *conn = connection_get(ctx);

	message_add_rcpt(conn->msg, argv[0]);
	sfsistat status = run_stage(ctx, conn, STAGE_RCPT);
	if (status != SMFIS_CONTINUE || !conn->scan->rcpt_refused_now)
		return status;
	/* Only this recipient is refused (greylisting): the transaction
	 * goes on for the others. */
	const struct rcpt_refusal *r =
	    &conn->scan->refused[conn->scan->nrefused - 1];
	char text[1024];
	log_msg(conn->msg->queue_id ? conn->msg->queue_id : "NOQUEUE",
	    LOG_LEVEL_INFO, "client=%s from=<%s> rcpt=<%s> reply=\"%s\"",
	    conn->msg->client_addr ? conn->msg->client_addr : "unknown",
	    conn->msg->mail_from ? conn->msg->mail_from : "", r->address,
	    r->reply);
	if (smfi_setreply(ctx, r->code, r->enhanced,
	    escape_percent(r->text, text, sizeof(text))) != MI_SUCCESS)
		log_msg(conn->msg->queue_id, LOG_LEVEL_WARNING,
		    "smfi_setreply refused \"%s\"", r->reply);
	return r->reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

static sfsistat
on_header(SMFICTX *ctx, char *name, char *value)
{
	struct connection *conn = connection_get(ctx);

	message_add_header(conn->msg, name, value, strlen(value));
	return no_reply(conn, SMFIP_NR_HDR);
}

static sfsistat
on_eoh(SMFICTX *ctx)
{
	struct connection *conn = connection_get(ctx);

	take_macros(ctx, conn->msg);
	return run_stage(ctx, conn, STAGE_EOH);
}

static sfsistat
on_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct connection *conn = connection_get(ctx);

	engine_body(conn->snap->engine, conn->scan, (const char *)chunk, len);
	return no_reply(conn, SMFIP_NR_BODY);
}

static sfsistat
on_eom(SMFICTX *ctx)
{
	struct connection *conn = connection_get(ctx);
	struct scan *scan = conn->scan;
	struct verdict *v = scan->verdict;

	/* An MTA may come here straight from RCPT (no DATA callbacks). */
	take_macros(ctx, conn->msg);
	engine_finish(conn->snap->engine, scan);
	if (v->action == VERDICT_REJECT || v->action == VERDICT_TEMPFAIL)
		return reply_forced(ctx, conn);

	/* Removals first, from the last index down, so that the indices of
	 * the ones still to remove stay right. */
	for (size_t i = scan->nremovals; i-- > 0;)
		if (smfi_chgheader(ctx, (char *)scan->removals[i].name,
		    scan->removals[i].index, NULL) != MI_SUCCESS)
			log_msg(conn->msg->queue_id, LOG_LEVEL_WARNING,
			    "could not remove %s #%d", scan->removals[i].name,
			    scan->removals[i].index);
	/* Inserted at the top in reverse, so they read in verdict order. */
	for (size_t i = v->nheaders; i-- > 0;)
		if (smfi_insheader(ctx, 0, v->headers[i].name,
		    v->headers[i].value) != MI_SUCCESS)
			log_msg(conn->msg->queue_id, LOG_LEVEL_WARNING,
			    "could not add %s", v->headers[i].name);
	if (v->new_subject != NULL) {
		int rc = message_header_count(conn->msg, "Subject") > 0 ?
		    smfi_chgheader(ctx, "Subject", 1, v->new_subject) :
		    smfi_addheader(ctx, "Subject", v->new_subject);
		if (rc != MI_SUCCESS)
			log_msg(conn->msg->queue_id, LOG_LEVEL_WARNING,
			    "could not rewrite the Subject");
	}
	if (v->quarantine != NULL &&
	    smfi_quarantine(ctx, v->quarantine) != MI_SUCCESS)
		log_msg(conn->msg->queue_id, LOG_LEVEL_WARNING,
		    "the MTA refused to quarantine: %s", v->quarantine);
	log_summary(conn);
	return SMFIS_CONTINUE;
}

static sfsistat
on_abort(SMFICTX *ctx)
{
	struct connection *conn = connection_get(ctx);

	if (conn != NULL) {
		message_reset(conn->msg);
		scan_reset(conn->scan);
		conn->logged = false;
	}
	return SMFIS_CONTINUE;
}

static sfsistat
on_close(SMFICTX *ctx)
{
	struct connection *conn = connection_get(ctx);

	if (conn != NULL && conn->snap == NULL) {
		/* Negotiated, never connected. */
		free(conn);
		smfi_setpriv(ctx, NULL);
	} else if (conn != NULL) {
		metrics_connection(-1);
		scan_free(conn->scan);
		message_free(conn->msg);
		snapshot_release(conn->snap);
		free(conn);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

static struct smfiDesc milter_description = {
	.xxfi_name = "mxguard",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = MILTER_ACTIONS,
	.xxfi_connect = on_connect,
	.xxfi_helo = on_helo,
	.xxfi_envfrom = on_envfrom,
	.xxfi_envrcpt = on_envrcpt,
	.xxfi_header = on_header,
	.xxfi_eoh = on_eoh,
	.xxfi_body = on_body,
	.xxfi_eom = on_eom,
	.xxfi_abort = on_abort,
	.xxfi_close = on_close,
	.xxfi_negotiate = on_negotiate,
};

static void
usage(void)
{
	fprintf(stderr, "usage: mxguard-milter [-f] [-c FILE] [-p PIDFILE]\n"
	    "  -f          stay in the foreground, log to stderr\n"
	    "  -c FILE     config file (default %s/mxguard.conf)\n"
	    "  -p PIDFILE  pid file (overrides [milter] pidfile)\n",
	    MXG_SYSCONFDIR);
}

/* SIGUSR1, blocked in every thread, arrives here. */
static void *
reload_main(void *arg)
{
	const char *pidfile = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;)
		if (sigwait(&set, &sig) == 0 && sig == SIGUSR1)
			daemon_reload(pidfile);
	return NULL;
}

/* Opens the socket (a port in use is an error now, not a silent retry
 * loop in smfi_main) and gives a unix socket its mode and group. */
static int
open_socket(const struct config *cfg, char *err)
{
	const char *path = daemon_unix_path(cfg->milter.socket);
	int rc;

	if (path != NULL && (rc = daemon_unix_socket_prepare(path, err)) != 0)
		return rc;
	if (smfi_setconn(cfg->milter.socket) != MI_SUCCESS ||
	    smfi_settimeout((int)(cfg->milter.timeout_ms / 1000)) !=
	    MI_SUCCESS || smfi_register(milter_description) != MI_SUCCESS)
		return mxg_fail(err, MXG_EINVAL, "libmilter refused socket %s",
		    cfg->milter.socket);
	if (smfi_opensocket(1) != MI_SUCCESS)
		return mxg_fail(err, MXG_EIO, "cannot listen on %s",
		    cfg->milter.socket);
	if (path != NULL)
		return daemon_unix_socket_finish(path, cfg, err);
	return MXG_OK;
}

int
main(int argc, char **argv)
{
	const char *config_path = MXG_SYSCONFDIR "/mxguard.conf";
	const char *pidfile = NULL;
	bool foreground = false;
	char err[MXG_ERRLEN];
	int opt, rc;

	while ((opt = getopt(argc, argv, "fc:p:h")) != -1) {
		switch (opt) {
		case 'f': foreground = true; break;
		case 'c': config_path = optarg; break;
		case 'p': pidfile = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (config_load(config_path, &boot_config, err) != 0) {
		fprintf(stderr, "mxguard-milter: %s\n", err);
		return 2;
	}
	if (pidfile == NULL)
		pidfile = boot_config->milter.pidfile;
	log_init("mxguard-milter", foreground, boot_config->milter.log_level);
	metrics_init("milter");
	log_set_format(boot_config->log.format);
	signal(SIGPIPE, SIG_IGN);

	/* Until daemon_ready(), stderr is still the caller's: start-up
	 * errors go there as well as to the log. */
	if ((rc = open_socket(boot_config, err)) != 0 ||
	    (!foreground && (rc = daemon_detach(err)) != 0) ||
	    (rc = daemon_drop_privileges(boot_config, err)) != 0) {
		log_msg(NULL, LOG_LEVEL_ERR, "%s", err);
		fprintf(stderr, "mxguard-milter: %s\n", err);
		return rc == MXG_EINVAL ? 2 : 1;
	}
	/* libmilter's signal thread waits for SIGHUP, SIGINT and SIGTERM
	 * with sigwait, ours for SIGUSR1; every other thread must have them
	 * blocked, so block them before the engine starts its threads (they
	 * inherit the mask) or the default action kills the process without
	 * a clean stop. */
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGHUP);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);

	/* Its HTTP thread, too, after the fork and with that mask. */
	if (boot_config->metrics.listen != NULL &&
	    (rc = metrics_start(boot_config->metrics.listen, err)) != 0) {
		log_msg(NULL, LOG_LEVEL_ERR, "%s", err);
		fprintf(stderr, "mxguard-milter: %s\n", err);
		return rc == MXG_EINVAL ? 2 : 1;
	}
	/* The resolver thread must start after the fork. */
	if ((rc = snapshot_init(config_path, NULL, NULL, err)) != 0 ||
	    (pidfile != NULL && (rc = daemon_pidfile_write(pidfile, err)) != 0)) {
		log_msg(NULL, LOG_LEVEL_ERR, "%s", err);
		fprintf(stderr, "mxguard-milter: %s\n", err);
		return 2;
	}
	metrics_config_loaded(true);
	pthread_t reloader;
	if ((rc = pthread_create(&reloader, NULL, reload_main,
	    (void *)pidfile)) != 0) {
		log_msg(NULL, LOG_LEVEL_ERR, "reload thread: %s", strerror(rc));
		return 1;
	}
	pthread_detach(reloader);

	log_msg(NULL, LOG_LEVEL_NOTICE, "listening on %s",
	    boot_config->milter.socket);
	daemon_ready();
	rc = smfi_main();
	log_msg(NULL, LOG_LEVEL_NOTICE, "stopping");
	daemon_notify("STOPPING=1");
	metrics_stop();

	daemon_pidfile_remove(pidfile);
	/* smfi_main returns once its workers are done with connections:
	 * the current snapshot is the only one left. */
	snapshot_shutdown();
	config_free(boot_config);
	return rc == MI_SUCCESS ? 0 : 1;
}
