/*
 * mxguard reload - asks a running daemon to re-read its config and rule
 * files, and reports what came of it.
 *
 *   mxguard reload [-c FILE] [--policy] [--pidfile PATH] [--timeout SEC]
 *                  [--json]
 *
 * The daemon is found by its pid file (--pidfile, else [milter] pidfile,
 * or [policy] pidfile with --policy). It gets SIGUSR1 and, when done,
 * writes the outcome beside its pid file (lib/daemon.h); this waits for
 * that. Exit 0: the new config is in force; 1: refused (the old one stays;
 * the error names file:line), no answer in time, or no daemon; 2: usage.
 */
#include "reload.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/config.h"
#include "../lib/daemon.h"
#include "../lib/mxg.h"
#include "../lib/strbuf.h"

#define EXIT_USAGE 2

static void
reload_usage(FILE *out)
{
	fprintf(out, "usage: mxguard reload [-c FILE] [--policy] "
	    "[--pidfile PATH] [--timeout SEC] [--json]\n");
}

static int
report(bool json, const char *daemon, long pid, const char *outcome,
    const struct daemon_reload_status *st, const char *error, int rc)
{
	if (json) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_puts(&sb, "{\"daemon\":");
		strbuf_json_cstr(&sb, daemon);
		strbuf_printf(&sb, ",\"pid\":%ld,\"outcome\":\"%s\","
		    "\"generation\":%lu,\"error\":", pid, outcome,
		    st ? st->generation : 0);
		if (error != NULL)
			strbuf_json_cstr(&sb, error);
		else
			strbuf_puts(&sb, "null");
		strbuf_puts(&sb, "}\n");
		fputs(sb.data, stdout);
		strbuf_free(&sb);
	} else if (rc == 0) {
		printf("%s (pid %ld): reloaded, config generation %lu\n", daemon,
		    pid, st->generation);
	} else {
		fprintf(stderr, "mxguard reload: %s%s%s\n", daemon,
		    pid > 0 ? ": " : " ", error);
	}
	return rc;
}

int
command_reload(int argc, char **argv)
{
	static const struct option options[] = {
		{"policy", no_argument, NULL, 'P'},
		{"pidfile", required_argument, NULL, 'p'},
		{"timeout", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = MXG_DEFAULT_CONFIG, *pidfile = NULL;
	bool policy = false, json = false;
	double timeout = 60;
	struct config *cfg = NULL;
	char err[MXG_ERRLEN], why[8192], *end;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'P': policy = true; break;
		case 'p': pidfile = optarg; break;
		case 'j': json = true; break;
		case 't':
			timeout = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || timeout <= 0) {
				reload_usage(stderr);
				return EXIT_USAGE;
			}
			break;
		case 'h': reload_usage(stdout); return 0;
		default: reload_usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		reload_usage(stderr);
		return EXIT_USAGE;
	}
	const char *daemon = policy ? "mxguard-policy" : "mxguard-milter";
	if (pidfile == NULL) {
		/* Only the pid file is wanted: a broken config is still one
		 * to report, but the daemon is asked all the same. */
		if (config_load(config_path, &cfg, err) != 0)
			return report(json, daemon, 0, "error", NULL, err, 1);
		pidfile = policy ? cfg->policy.pidfile : cfg->milter.pidfile;
		if (pidfile == NULL) {
			config_free(cfg);
			return report(json, daemon, 0, "error", NULL, "no pid "
			    "file configured ([milter] or [policy] pidfile); "
			    "give --pidfile", 1);
		}
	}
	char pidpath[4096];
	snprintf(pidpath, sizeof(pidpath), "%s", pidfile);
	config_free(cfg);

	FILE *fp = fopen(pidpath, "r");
	long pid = 0;
	if (fp == NULL || fscanf(fp, "%ld", &pid) != 1 || pid <= 1) {
		snprintf(why, sizeof(why), "no running daemon: %s: %s", pidpath,
		    fp == NULL ? strerror(errno) : "no pid in it");
		if (fp != NULL)
			fclose(fp);
		return report(json, daemon, 0, "error", NULL, why, 1);
	}
	fclose(fp);

	struct daemon_reload_status before, after;
	daemon_reload_status_read(pidpath, &before);
	if (kill((pid_t)pid, SIGUSR1) < 0) {
		snprintf(err, sizeof(err), "cannot signal pid %ld: %s", pid,
		    strerror(errno));
		return report(json, daemon, pid, "error", NULL, err, 1);
	}
	struct timespec start, now, pause = {0, 50 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (daemon_reload_status_read(pidpath, &after) == 0 &&
		    after.attempts > before.attempts)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((double)(now.tv_sec - start.tv_sec) +
		    (double)(now.tv_nsec - start.tv_nsec) / 1e9 > timeout) {
			snprintf(err, sizeof(err), "pid %ld did not report a "
			    "reload within %g s (see its log)", pid, timeout);
			return report(json, daemon, pid, "timeout", NULL, err, 1);
		}
		nanosleep(&pause, NULL);
	}
	if (!after.ok) {
		snprintf(why, sizeof(why), "reload refused, config generation %lu "
		    "stays in force: %s", after.generation, after.error);
		return report(json, daemon, pid, "refused", &after, why, 1);
	}
	return report(json, daemon, pid, "reloaded", &after, NULL, 0);
}
