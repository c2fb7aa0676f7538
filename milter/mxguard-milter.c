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
#include "../lib/engine.h"
#include "../lib/log.h"
#include "../lib/message.h"
#include "../lib/mxg.h"
#include "../lib/strbuf.h"

#ifndef MXG_SYSCONFDIR
#define MXG_SYSCONFDIR "/etc/mxguard"
#endif

static struct config *milter_config;
static struct engine *milter_engine;

struct connection {
	struct message *msg;
	struct scan *scan;
	bool logged;		/* the summary line of this transaction */
};

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
	struct strbuf line = STRBUF_INIT;

	if (conn->logged)
		return;
	conn->logged = true;
	engine_summary(conn->scan, &line);
	log_msg(conn->msg->queue_id ? conn->msg->queue_id : "NOQUEUE",
	    LOG_LEVEL_INFO, "%s", line.data);
	strbuf_free(&line);
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

	verdict_decide(v, milter_config);
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
	if (engine_run_stage(milter_engine, conn->scan, stage))
		return reply_forced(ctx, conn);
	return SMFIS_CONTINUE;
}

static sfsistat
on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct connection *conn = mxg_calloc(1, sizeof(*conn));
	char addr[INET6_ADDRSTRLEN] = "";

	conn->msg = message_new(milter_config->milter.header_limit,
	    milter_config->milter.body_scan_limit);
	conn->scan = scan_new(milter_engine, conn->msg);
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
	return SMFIS_CONTINUE;
}

static sfsistat
on_envfrom(SMFICTX *ctx, char **argv)
{
	struct connection *conn = connection_get(ctx);

	/* A new transaction on this connection starts clean. */
	message_reset(conn->msg);
	scan_reset(conn->scan);
	conn->logged = false;
	take_macros(ctx, conn->msg);
	message_set_mail_from(conn->msg, argv[0]);
	engine_run_stage(milter_engine, conn->scan, STAGE_HELO);
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
	return SMFIS_CONTINUE;
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

	engine_body(milter_engine, conn->scan, (const char *)chunk, len);
	return SMFIS_CONTINUE;
}

static sfsistat
on_eom(SMFICTX *ctx)
{
	struct connection *conn = connection_get(ctx);
	struct scan *scan = conn->scan;
	struct verdict *v = scan->verdict;

	/* An MTA may come here straight from RCPT (no DATA callbacks). */
	take_macros(ctx, conn->msg);
	engine_finish(milter_engine, scan);
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

	if (conn != NULL) {
		scan_free(conn->scan);
		message_free(conn->msg);
		free(conn);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

static struct smfiDesc milter_description = {
	.xxfi_name = "mxguard",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE,
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
};

static int
write_pidfile(const char *path)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL) {
		log_msg(NULL, LOG_LEVEL_ERR, "pidfile %s: %s", path,
		    strerror(errno));
		return -1;
	}
	fprintf(fp, "%ld\n", (long)getpid());
	fclose(fp);
	return 0;
}

static int
daemonize(void)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return chdir("/");
}

static void
usage(void)
{
	fprintf(stderr, "usage: mxguard-milter [-f] [-c FILE]\n"
	    "  -f       stay in the foreground, log to stderr\n"
	    "  -c FILE  config file (default %s/mxguard.conf)\n",
	    MXG_SYSCONFDIR);
}

int
main(int argc, char **argv)
{
	const char *config_path = MXG_SYSCONFDIR "/mxguard.conf";
	bool foreground = false;
	char err[MXG_ERRLEN];
	int opt, rc;

	while ((opt = getopt(argc, argv, "fc:h")) != -1) {
		switch (opt) {
		case 'f': foreground = true; break;
		case 'c': config_path = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (config_load(config_path, &milter_config, err) != 0) {
		fprintf(stderr, "mxguard-milter: %s\n", err);
		return 2;
	}
	log_init("mxguard-milter", foreground, milter_config->milter.log_level);
	signal(SIGPIPE, SIG_IGN);

	if (smfi_setconn(milter_config->milter.socket) != MI_SUCCESS ||
	    smfi_settimeout((int)(milter_config->milter.timeout_ms / 1000)) !=
	    MI_SUCCESS || smfi_register(milter_description) != MI_SUCCESS) {
		fprintf(stderr, "mxguard-milter: libmilter refused socket %s\n",
		    milter_config->milter.socket);
		return 2;
	}
	/* Open (and for unix sockets, replace) the socket now, so that a
	 * port in use is an error at start, not a silent retry loop. */
	if (smfi_opensocket(1) != MI_SUCCESS) {
		fprintf(stderr, "mxguard-milter: cannot listen on %s\n",
		    milter_config->milter.socket);
		return 1;
	}
	if (!foreground && daemonize() < 0) {
		fprintf(stderr, "mxguard-milter: cannot daemonize: %s\n",
		    strerror(errno));
		return 1;
	}
	/* libmilter's signal thread waits for SIGHUP, SIGINT and SIGTERM
	 * with sigwait; every other thread must have them blocked, so block
	 * them before the engine starts its threads (they inherit the mask)
	 * or the default action kills the process without a clean stop. */
	sigset_t stop_signals;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGHUP);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

	/* The resolver thread must start after the fork. */
	if (engine_new(milter_config, &milter_engine, err) != 0) {
		log_msg(NULL, LOG_LEVEL_ERR, "%s", err);
		if (foreground)
			fprintf(stderr, "mxguard-milter: %s\n", err);
		return 2;
	}
	if (milter_config->milter.pidfile != NULL &&
	    write_pidfile(milter_config->milter.pidfile) < 0)
		return 1;

	log_msg(NULL, LOG_LEVEL_NOTICE, "listening on %s",
	    milter_config->milter.socket);
	rc = smfi_main();
	log_msg(NULL, LOG_LEVEL_NOTICE, "stopping");

	if (milter_config->milter.pidfile != NULL)
		unlink(milter_config->milter.pidfile);
	engine_free(milter_engine);
	config_free(milter_config);
	return rc == MI_SUCCESS ? 0 : 1;
}
