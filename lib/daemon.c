#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "mxg.h"
#include "snapshot.h"

/* The write end of the pipe the detached parent waits on; -1 when not
 * detached or already ready. */
static int ready_fd = -1;

int
daemon_detach(char *err)
{
	int pipefd[2];
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0 || (pid = fork()) < 0)
		return mxg_fail(err, MXG_EIO, "cannot detach: %s",
		    strerror(errno));
	if (pid > 0) {
		char c;
		ssize_t n;
		int status;

		close(pipefd[1]);
		do
			n = read(pipefd[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(0);
		/* The child failed before it was ready: exit as it did. */
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    WEXITSTATUS(status) != 0)
			_exit(WEXITSTATUS(status));
		_exit(1);
	}
	close(pipefd[0]);
	ready_fd = pipefd[1];
	if (setsid() < 0 || chdir("/") < 0)
		return mxg_fail(err, MXG_EIO, "cannot detach: %s",
		    strerror(errno));
	return MXG_OK;
}

void
daemon_notify(const char *state)
{
	/* A no-op unless systemd started us with NOTIFY_SOCKET. */
	(void)sd_notify(0, state);
}

void
daemon_ready(void)
{
	daemon_notify("READY=1");
	if (ready_fd < 0)
		return;
	/* Until now stderr was the caller's, for start-up errors. */
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	(void)!write(ready_fd, "r", 1);
	close(ready_fd);
	ready_fd = -1;
}

const char *
daemon_unix_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	return NULL;
}

int
daemon_unix_socket_prepare(const char *path, char *err)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path))
		return mxg_fail(err, MXG_EINVAL, "%s: path too long", path);
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? MXG_OK : mxg_fail(err, MXG_EIO,
		    "%s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return mxg_fail(err, MXG_EIO, "%s exists and is not a socket",
		    path);
	/* Someone accepting on it is another instance: never steal its
	 * socket. Refused connections mean a leftover from a crash. */
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return mxg_fail(err, MXG_EIO, "socket: %s", strerror(errno));
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	int connect_errno = errno;
	close(fd);
	if (rc == 0)
		return mxg_fail(err, MXG_EIO, "%s: another process is listening "
		    "on it", path);
	if (connect_errno != ECONNREFUSED && connect_errno != ENOENT)
		return mxg_fail(err, MXG_EIO, "%s: cannot tell whether it is in "
		    "use: %s", path, strerror(connect_errno));
	if (unlink(path) < 0 && errno != ENOENT)
		return mxg_fail(err, MXG_EIO, "%s: cannot remove the stale "
		    "socket: %s", path, strerror(errno));
	log_msg(NULL, LOG_LEVEL_NOTICE, "removed stale socket %s", path);
	return MXG_OK;
}

/* The group the daemon runs as: [milter] group, else the user's. */
static int
lookup_ids(const struct config *cfg, uid_t *uid, gid_t *gid, char *err)
{
	const struct passwd *pw = getpwnam(cfg->milter.user);

	if (pw == NULL)
		return mxg_fail(err, MXG_EINVAL, "[milter] user %s: no such "
		    "user", cfg->milter.user);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (cfg->milter.group != NULL) {
		const struct group *gr = getgrnam(cfg->milter.group);

		if (gr == NULL)
			return mxg_fail(err, MXG_EINVAL, "[milter] group %s: no "
			    "such group", cfg->milter.group);
		*gid = gr->gr_gid;
	}
	return MXG_OK;
}

int
daemon_unix_socket_finish(const char *path, const struct config *cfg,
    char *err)
{
	if (chmod(path, (mode_t)cfg->milter.socket_mode) < 0)
		return mxg_fail(err, MXG_EIO, "chmod %s: %s", path,
		    strerror(errno));
	if (cfg->milter.group == NULL && (cfg->milter.user == NULL ||
	    geteuid() != 0))
		return MXG_OK;
	uid_t uid;
	gid_t gid;
	if (cfg->milter.user != NULL) {
		int rc = lookup_ids(cfg, &uid, &gid, err);
		if (rc != 0)
			return rc;
	} else {
		const struct group *gr = getgrnam(cfg->milter.group);
		if (gr == NULL)
			return mxg_fail(err, MXG_EINVAL, "[milter] group %s: no "
			    "such group", cfg->milter.group);
		gid = gr->gr_gid;
		uid = (uid_t)-1;
	}
	/* As root the socket goes to the service user, so that it can
	 * remove it at exit; as that user only the group can change. */
	if (chown(path, geteuid() == 0 ? uid : (uid_t)-1, gid) < 0)
		return mxg_fail(err, MXG_EIO, "chown %s: %s", path,
		    strerror(errno));
	return MXG_OK;
}

int
daemon_drop_privileges(const struct config *cfg, char *err)
{
	uid_t uid;
	gid_t gid;
	int rc;

	if (geteuid() != 0) {
		if (cfg->milter.user != NULL) {
			const struct passwd *pw = getpwnam(cfg->milter.user);
			if (pw == NULL || pw->pw_uid != geteuid())
				log_msg(NULL, LOG_LEVEL_WARNING, "not started as "
				    "root: staying uid %ld, not [milter] user "
				    "%s", (long)geteuid(), cfg->milter.user);
		}
		return MXG_OK;
	}
	if (cfg->milter.user == NULL)
		return mxg_fail(err, MXG_EINVAL, "started as root with no "
		    "[milter] user: refusing to judge mail as root (set user "
		    "= mxguard, or user = root to insist)");
	if (strcmp(cfg->milter.user, "root") == 0) {
		log_msg(NULL, LOG_LEVEL_WARNING, "[milter] user = root: running "
		    "as root, as configured");
		return MXG_OK;
	}
	if ((rc = lookup_ids(cfg, &uid, &gid, err)) != 0)
		return rc;
	if (uid == 0)
		return mxg_fail(err, MXG_EINVAL, "[milter] user %s has uid 0: "
		    "set user = root to run as root", cfg->milter.user);
	/* Groups first: once the uid is dropped they cannot change. */
	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		return mxg_fail(err, MXG_EIO, "cannot become %s: %s",
		    cfg->milter.user, strerror(errno));
	if (setuid(0) == 0)
		return mxg_fail(err, MXG_EIO, "could regain root after "
		    "becoming %s: refusing to run", cfg->milter.user);
	log_msg(NULL, LOG_LEVEL_INFO, "running as %s (uid %ld, gid %ld)",
	    cfg->milter.user, (long)uid, (long)gid);
	return MXG_OK;
}

int
daemon_pidfile_write(const char *path, char *err)
{
	char tmp[4096];
	FILE *fp;

	/* Written whole then renamed: a reader never sees half a pid. */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return mxg_fail(err, MXG_EINVAL, "pidfile %s: path too long",
		    path);
	if ((fp = fopen(tmp, "w")) == NULL)
		return mxg_fail(err, MXG_EIO, "pidfile %s: %s", tmp,
		    strerror(errno));
	fprintf(fp, "%ld\n", (long)getpid());
	if (fclose(fp) != 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return mxg_fail(err, MXG_EIO, "pidfile %s: %s", path,
		    strerror(e));
	}
	return MXG_OK;
}

static void
reload_status_path(const char *pidfile, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s.reload", pidfile);
}

void
daemon_pidfile_remove(const char *path)
{
	char status[4096];

	if (path == NULL)
		return;
	unlink(path);
	reload_status_path(path, status, sizeof(status));
	unlink(status);
}

void
daemon_reload_status_write(const char *pidfile,
    const struct daemon_reload_status *status)
{
	char path[4096], tmp[4200];
	FILE *fp;

	if (pidfile == NULL)
		return;
	reload_status_path(pidfile, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fp = fopen(tmp, "w")) == NULL) {
		log_msg(NULL, LOG_LEVEL_WARNING, "%s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(fp, "attempts=%lu\ngeneration=%lu\nok=%s\ntime=%lld\n"
	    "error=%s\n", status->attempts, status->generation, status->ok ? "yes" : "no", status->time,
	    status->error);
	if (fclose(fp) != 0 || rename(tmp, path) < 0) {
		log_msg(NULL, LOG_LEVEL_WARNING, "%s: %s", path, strerror(errno));
		unlink(tmp);
	}
}

int
daemon_reload_status_read(const char *pidfile,
    struct daemon_reload_status *status)
{
	char path[4096], line[512];
	FILE *fp;

	memset(status, 0, sizeof(*status));
	reload_status_path(pidfile, path, sizeof(path));
	if ((fp = fopen(path, "r")) == NULL)
		return MXG_EIO;
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "attempts=", 9) == 0)
			status->attempts = strtoul(line + 9, NULL, 10);
		else if (strncmp(line, "generation=", 11) == 0)
			status->generation = strtoul(line + 11, NULL, 10);
		else if (strncmp(line, "ok=", 3) == 0)
			status->ok = strcmp(line + 3, "yes") == 0;
		else if (strncmp(line, "time=", 5) == 0)
			status->time = strtoll(line + 5, NULL, 10);
		else if (strncmp(line, "error=", 6) == 0)
			snprintf(status->error, sizeof(status->error), "%s",
			    line + 6);
	}
	fclose(fp);
	return MXG_OK;
}

int
daemon_reload(const char *pidfile)
{
	static unsigned long attempts;
	struct daemon_reload_status status;
	char err[MXG_ERRLEN];
	int rc;

	daemon_notify("RELOADING=1");
	rc = snapshot_reload(err);
	memset(&status, 0, sizeof(status));
	status.attempts = ++attempts;
	status.generation = snapshot_generation();
	status.ok = rc == 0;
	status.time = (long long)time(NULL);
	metrics_config_loaded(rc == 0);
	if (rc == 0) {
		log_msg(NULL, LOG_LEVEL_NOTICE, "reloaded: config generation %lu",
		    status.generation);
	} else {
		snprintf(status.error, sizeof(status.error), "%s", err);
		log_msg(NULL, LOG_LEVEL_ERR, "reload refused, generation %lu "
		    "stays in force: %s", status.generation, err);
	}
	daemon_reload_status_write(pidfile, &status);
	daemon_notify(rc == 0 ? "READY=1\nSTATUS=reloaded" :
	    "READY=1\nSTATUS=reload refused: the old config stays");
	return rc;
}
