/*
 * smtp_load - SMTP load for the filter comparison (tests/bench/compare.py):
 * ONE process keeps many sessions in flight with poll(), one message per
 * session, so that the load generator costs little next to the MTA and
 * its filters (smtp-source started once per message costs ~15 ms of CPU
 * each). A benchmark tool, never a test.
 *
 *	smtp_load -p PORT [-a ADDR] [-c SESSIONS] [-n COUNT] [-s START]
 *	          [-R] [-o FILE] [-T SECONDS] DIR
 *
 * DIR holds the messages, read as bench_engine reads them (benchutil.h,
 * THE CORPUS): one file a message, in name order, the envelope from the
 * X-Bench-Client, -Helo, -Mail-From and -Rcpt headers, which are removed.
 * Message k (0 <= k < COUNT, COUNT default: every file once) is file
 * (START + k) modulo the number of files. SESSIONS (default 20) sessions
 * are kept open at once against ADDR:PORT (default 127.0.0.1); each one
 * sends one message and ends:
 *
 *	EHLO load.bench.invalid
 *	XCLIENT ADDR=<X-Bench-Client> NAME=<HELO, or [UNAVAILABLE] when it
 *	        is no host name> HELO=<X-Bench-Helo>	(the MTA must allow
 *	        XCLIENT from us: Postfix's smtpd_authorized_xclient_hosts)
 *	EHLO <X-Bench-Helo>	(XCLIENT restarts the session)
 *	MAIL FROM:<...>, RCPT TO:<...>, DATA, the message (dot-stuffed), "."
 *	QUIT
 *
 * so that the MTA and its milters see a TEST-NET client, not loopback
 * (which filters trust), while every packet stays on loopback. A 4xx or
 * 5xx reply to MAIL, RCPT, DATA or the message ends that transaction
 * (QUIT follows). -R stops after RCPT TO: greylisting filters at RCPT
 * time then learn each triplet without any message being sent (their
 * "prime" passes).
 *
 * -T is the deadline of one session (default 120 s); a session past it,
 * or whose connection fails or closes early, counts as an error.
 *
 * OUTPUT. -o FILE gets one line per message, in the order they ended:
 *	SEQ FILE STAGE CODE TEXT
 * STAGE is where the transaction ended: DOT (the reply to the message),
 * RCPT (with -R, or a refusal), MAIL, DATA, CONNECT, EHLO, XCLIENT, HELO
 * (the EHLO after XCLIENT) or IO (connection lost; CODE 0); TEXT the last
 * line of that reply without its code. Stdout gets the summary: sessions,
 * messages, wall seconds (first connect to last close), messages per
 * second, the session time p50/p99, the outcomes (accepted: 2xx to the
 * message, or to RCPT with -R; deferred 4xx; rejected 5xx; errors) and
 * this process's own CPU per message (user + system). Exit 0 when every
 * session ran to its end (whatever the replies), 1 when some had errors,
 * 2 for usage or input errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/mxg.h"
#include "../../lib/strbuf.h"
#include "benchutil.h"

#define REPLY_LINE_MAX 1024	/* longer reply lines are cut */
#define READ_CHUNK 4096
#define MAX_SESSIONS 1024

enum step {
	STEP_CONNECT,		/* waiting for connect() to finish */
	STEP_GREETING,
	STEP_EHLO,
	STEP_XCLIENT,
	STEP_HELO,		/* the EHLO after XCLIENT */
	STEP_MAIL,
	STEP_RCPT,
	STEP_DATA,
	STEP_DOT,		/* message sent (or sending), reply awaited */
	STEP_QUIT,
};

static const char *const step_names[] = {"CONNECT", "CONNECT", "EHLO",
    "XCLIENT", "HELO", "MAIL", "RCPT", "DATA", "DOT", "QUIT"};

/* A message ready for the wire: its commands and its dot-stuffed data. */
struct wire_message {
	const char *name;
	char *xclient;		/* "XCLIENT ADDR=... NAME=... HELO=...\r\n" */
	char *ehlo;		/* "EHLO helo\r\n" */
	char *mail;		/* "MAIL FROM:<...>\r\n" */
	char *rcpt;		/* "RCPT TO:<...>\r\n" */
	char *data;		/* dot-stuffed, ends with ".\r\n" */
	size_t datalen;
};

struct session {
	int fd;			/* -1: slot free */
	unsigned long seq;
	const struct wire_message *msg;
	enum step step;
	uint64_t start_ns;
	/* Output pending: a command, or the message data. */
	const char *out;
	size_t outlen, outoff;
	/* The reply being read. */
	char line[REPLY_LINE_MAX];
	size_t linelen;
	/* Where the transaction ended, once it has. */
	bool ended;
	enum step end_step;
	int end_code;
	char end_text[160];
};

struct load {
	struct sockaddr_in addr;
	struct wire_message *msgs;
	size_t nmsgs;
	unsigned long count, start, next;
	bool rcpt_only;
	uint64_t deadline_ns;	/* per session */
	FILE *out;
	struct bench_lat lat;
	unsigned long accepted, deferred, rejected, errors, done;
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: smtp_load -p PORT [-a ADDR] [-c SESSIONS] "
	    "[-n COUNT] [-s START]\n"
	    "                 [-R] [-o FILE] [-T SECONDS] DIR\n");
}

/* ---------------------------------------------------------- messages */

/* RFC 3461 xtext: '+', '=' and bytes outside '!'..'~' as +HH. */
static void
append_xtext(struct strbuf *sb, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < '!' || c > '~' || c == '+' || c == '=')
			strbuf_printf(sb, "+%02X", c);
		else
			strbuf_putc(sb, (char)c);
	}
}

/* A HELO name that can stand for the client's host name (XCLIENT NAME). */
static bool
looks_like_hostname(const char *s)
{
	if (strchr(s, '.') == NULL || *s == '.' || *s == '[')
		return false;
	for (; *s != '\0'; s++)
		if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') ||
		    ('0' <= *s && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

/* Strips what no SMTP command line may hold (CR, LF, NUL cut it short). */
static void
append_safe(struct strbuf *sb, const char *s)
{
	strbuf_append(sb, s, strcspn(s, "\r\n"));
}

static void
wire_prepare(struct wire_message *w, const struct bench_mail *m)
{
	struct strbuf sb = STRBUF_INIT;
	const char *from = m->from;

	w->name = m->name;
	strbuf_puts(&sb, "XCLIENT ADDR=");
	append_xtext(&sb, m->client);
	strbuf_puts(&sb, " NAME=");
	if (looks_like_hostname(m->helo))
		append_xtext(&sb, m->helo);
	else
		strbuf_puts(&sb, "[UNAVAILABLE]");
	strbuf_puts(&sb, " HELO=");
	append_xtext(&sb, m->helo);
	strbuf_puts(&sb, "\r\n");
	w->xclient = strbuf_steal(&sb);

	strbuf_puts(&sb, "EHLO ");
	append_safe(&sb, m->helo);
	strbuf_puts(&sb, "\r\n");
	w->ehlo = strbuf_steal(&sb);

	if (strcmp(from, "<>") == 0)
		from = "";
	strbuf_puts(&sb, "MAIL FROM:<");
	append_safe(&sb, from);
	strbuf_puts(&sb, ">\r\n");
	w->mail = strbuf_steal(&sb);

	strbuf_puts(&sb, "RCPT TO:<");
	append_safe(&sb, m->rcpt);
	strbuf_puts(&sb, ">\r\n");
	w->rcpt = strbuf_steal(&sb);

	/* Dot-stuffing (RFC 5321 4.5.2); the data is CRLF already. */
	for (size_t i = 0; i < m->len;) {
		const char *nl = memchr(m->data + i, '\n', m->len - i);
		size_t end = nl ? (size_t)(nl - m->data) + 1 : m->len;

		if (m->data[i] == '.')
			strbuf_putc(&sb, '.');
		strbuf_append(&sb, m->data + i, end - i);
		i = end;
	}
	if (sb.len > 0 && (sb.len < 2 || sb.data[sb.len - 1] != '\n'))
		strbuf_puts(&sb, "\r\n");
	strbuf_puts(&sb, ".\r\n");
	w->datalen = sb.len;
	w->data = strbuf_steal(&sb);
}

static void
wire_free(struct wire_message *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(w[i].xclient);
		free(w[i].ehlo);
		free(w[i].mail);
		free(w[i].rcpt);
		free(w[i].data);
	}
	free(w);
}

/* ---------------------------------------------------------- sessions */

static void
session_send(struct session *s, const char *data, size_t len)
{
	s->out = data;
	s->outlen = len;
	s->outoff = 0;
}

static void
session_send_str(struct session *s, const char *cmd)
{
	session_send(s, cmd, strlen(cmd));
}

/* Records where the transaction ended; the first end counts. */
static void
session_end(struct session *s, enum step step, int code, const char *text)
{
	if (s->ended)
		return;
	s->ended = true;
	s->end_step = step;
	s->end_code = code;
	snprintf(s->end_text, sizeof(s->end_text), "%s", text);
}

static void
session_close(struct load *ld, struct session *s)
{
	const char *what;

	close(s->fd);
	s->fd = -1;
	if (!s->ended)
		session_end(s, s->step, 0, "connection closed early");
	bench_lat_add(&ld->lat, bench_now_ns() - s->start_ns);
	ld->done++;
	/* Replies to the transaction are outcomes; anything else failed. */
	if (s->end_code == 0 || s->end_step < STEP_MAIL ||
	    s->end_step > STEP_DOT) {
		ld->errors++;
		what = s->end_code == 0 ? "IO" : step_names[s->end_step];
	} else {
		what = step_names[s->end_step];
		if (s->end_code / 100 == 2)
			ld->accepted++;
		else if (s->end_code / 100 == 4)
			ld->deferred++;
		else
			ld->rejected++;
	}
	if (ld->out != NULL)
		fprintf(ld->out, "%lu %s %s %d %s\n", s->seq, s->msg->name,
		    what, s->end_code, s->end_text);
}

/* Opens the next message's session in slot s; false when none is left. */
static bool
session_open(struct load *ld, struct session *s)
{
	int fd;

	if (ld->next >= ld->count)
		return false;
	memset(s, 0, sizeof(*s));
	s->seq = ld->next++;
	s->msg = &ld->msgs[(ld->start + s->seq) % ld->nmsgs];
	s->start_ns = bench_now_ns();
	s->step = STEP_CONNECT;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "smtp_load: socket: %s\n", strerror(errno));
		exit(2);
	}
	s->fd = fd;
	if (connect(fd, (struct sockaddr *)&ld->addr, sizeof(ld->addr)) != 0 &&
	    errno != EINPROGRESS) {
		session_end(s, STEP_CONNECT, 0, strerror(errno));
		session_close(ld, s);
		return session_open(ld, s);
	}
	return true;
}

/*
 * One complete reply (its last line in s->line) moves the session on.
 * Returns false when the session is over and its socket should close.
 */
static bool
session_reply(struct load *ld, struct session *s, int code, const char *text)
{
	bool ok = code / 100 == 2 || (s->step == STEP_DATA && code == 354);

	if (s->step == STEP_QUIT)
		return false;
	if (!ok) {
		session_end(s, s->step, code, text);
		s->step = STEP_QUIT;
		session_send_str(s, "QUIT\r\n");
		return true;
	}
	switch (s->step) {
	case STEP_GREETING:
		s->step = STEP_EHLO;
		session_send_str(s, "EHLO load.bench.invalid\r\n");
		break;
	case STEP_EHLO:
		s->step = STEP_XCLIENT;
		session_send_str(s, s->msg->xclient);
		break;
	case STEP_XCLIENT:
		s->step = STEP_HELO;
		session_send_str(s, s->msg->ehlo);
		break;
	case STEP_HELO:
		s->step = STEP_MAIL;
		session_send_str(s, s->msg->mail);
		break;
	case STEP_MAIL:
		s->step = STEP_RCPT;
		session_send_str(s, s->msg->rcpt);
		break;
	case STEP_RCPT:
		if (ld->rcpt_only) {
			session_end(s, STEP_RCPT, code, text);
			s->step = STEP_QUIT;
			session_send_str(s, "QUIT\r\n");
		} else {
			s->step = STEP_DATA;
			session_send_str(s, "DATA\r\n");
		}
		break;
	case STEP_DATA:
		s->step = STEP_DOT;
		session_send(s, s->msg->data, s->msg->datalen);
		break;
	case STEP_DOT:
		session_end(s, STEP_DOT, code, text);
		s->step = STEP_QUIT;
		session_send_str(s, "QUIT\r\n");
		break;
	case STEP_CONNECT:
	case STEP_QUIT:
		break;
	}
	return true;
}

/*
 * Reads what the server sent and acts on each complete reply. A reply
 * ends with a line "DDD " or "DDD"; "DDD-" lines continue it. Returns
 * false when the session is over.
 */
static bool
session_read(struct load *ld, struct session *s)
{
	char buf[READ_CHUNK];
	ssize_t n = read(s->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0) {
		if (s->step != STEP_QUIT)
			session_end(s, s->step, 0, n == 0 ? "connection closed "
			    "by the server" : strerror(errno));
		return false;
	}
	for (ssize_t i = 0; i < n; i++) {
		char c = buf[i];

		if (c != '\n') {
			if (c != '\r' && s->linelen < sizeof(s->line) - 1)
				s->line[s->linelen++] = c;
			continue;
		}
		s->line[s->linelen] = '\0';
		size_t len = s->linelen;
		s->linelen = 0;
		if (len < 3 || s->line[0] < '2' || s->line[0] > '5') {
			session_end(s, s->step, 0, "malformed reply");
			return false;
		}
		if (len > 3 && s->line[3] == '-')
			continue;
		int code = atoi(s->line);
		if (!session_reply(ld, s, code, len > 4 ? s->line + 4 : ""))
			return false;
	}
	return true;
}

/* Writes what is pending. Returns false on a write error. */
static bool
session_write(struct session *s)
{
	while (s->outoff < s->outlen) {
		ssize_t n = write(s->fd, s->out + s->outoff,
		    s->outlen - s->outoff);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return true;
			session_end(s, s->step, 0, strerror(errno));
			return false;
		}
		s->outoff += (size_t)n;
	}
	return true;
}

/* Runs every session to its end. */
static void
run(struct load *ld, struct session *slots, int nslots)
{
	struct pollfd *pfd = mxg_calloc((size_t)nslots, sizeof(*pfd));
	int live = 0;

	for (int i = 0; i < nslots; i++) {
		slots[i].fd = -1;
		if (session_open(ld, &slots[i]))
			live++;
	}
	while (live > 0) {
		uint64_t now = bench_now_ns();

		for (int i = 0; i < nslots; i++) {
			struct session *s = &slots[i];

			pfd[i].fd = s->fd;
			pfd[i].revents = 0;
			if (s->fd < 0)
				continue;
			if (now - s->start_ns > ld->deadline_ns) {
				session_end(s, s->step, 0, "session deadline "
				    "passed");
				session_close(ld, s);
				if (!session_open(ld, s))
					live--;
				pfd[i].fd = s->fd;
			}
			if (s->fd < 0)
				continue;
			pfd[i].events = s->step == STEP_CONNECT ||
			    s->outoff < s->outlen ? POLLOUT : POLLIN;
		}
		if (live == 0)
			break;
		if (poll(pfd, (nfds_t)nslots, 1000) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "smtp_load: poll: %s\n", strerror(errno));
			exit(2);
		}
		for (int i = 0; i < nslots; i++) {
			struct session *s = &slots[i];
			bool keep = true;

			if (s->fd < 0 || pfd[i].revents == 0)
				continue;
			if (s->step == STEP_CONNECT) {
				int err = 0;
				socklen_t len = sizeof(err);

				getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err,
				    &len);
				if (err != 0) {
					session_end(s, STEP_CONNECT, 0,
					    strerror(err));
					keep = false;
				} else {
					s->step = STEP_GREETING;
				}
			} else if (s->outoff < s->outlen) {
				keep = session_write(s);
			} else if (pfd[i].revents & (POLLIN | POLLHUP |
			    POLLERR)) {
				keep = session_read(ld, s);
				if (keep && s->outoff < s->outlen)
					keep = session_write(s);
			}
			if (!keep) {
				session_close(ld, s);
				if (!session_open(ld, s))
					live--;
			}
		}
	}
	free(pfd);
}

int
main(int argc, char **argv)
{
	struct bench_mail_defaults def = {"192.0.2.1", "bench.invalid", NULL,
	    "postmaster@bench.example"};
	const char *addr = "127.0.0.1", *out_path = NULL;
	long port = 0, sessions = 20, count = -1, start = 0, timeout_s = 120;
	struct load ld;
	int opt;

	memset(&ld, 0, sizeof(ld));
	while ((opt = getopt(argc, argv, "p:a:c:n:s:Ro:T:h")) != -1) {
		switch (opt) {
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'a': addr = optarg; break;
		case 'c': sessions = strtol(optarg, NULL, 10); break;
		case 'n': count = strtol(optarg, NULL, 10); break;
		case 's': start = strtol(optarg, NULL, 10); break;
		case 'R': ld.rcpt_only = true; break;
		case 'o': out_path = optarg; break;
		case 'T': timeout_s = strtol(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || port < 1 || port > 65535 || sessions < 1 ||
	    sessions > MAX_SESSIONS || count < -1 || start < 0 ||
	    timeout_s < 1) {
		usage(stderr);
		return 2;
	}
	ld.addr.sin_family = AF_INET;
	ld.addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &ld.addr.sin_addr) != 1) {
		fprintf(stderr, "smtp_load: -a %s: not an IPv4 address\n", addr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	struct bench_mail *mails = NULL;
	size_t nmails = 0;
	if (bench_mail_load_dir(argv[optind], &def, "smtp_load", &mails,
	    &nmails) != 0) {
		bench_mail_free(mails, nmails);
		return 2;
	}
	ld.msgs = mxg_calloc(nmails, sizeof(*ld.msgs));
	ld.nmsgs = nmails;
	for (size_t i = 0; i < nmails; i++)
		wire_prepare(&ld.msgs[i], &mails[i]);
	ld.count = count < 0 ? (unsigned long)nmails : (unsigned long)count;
	ld.start = (unsigned long)start;
	ld.deadline_ns = (uint64_t)timeout_s * 1000000000u;
	if (out_path != NULL && (ld.out = fopen(out_path, "w")) == NULL) {
		fprintf(stderr, "smtp_load: %s: %s\n", out_path,
		    strerror(errno));
		return 2;
	}

	struct session *slots = mxg_calloc((size_t)sessions, sizeof(*slots));
	double cpu0 = bench_cpu_seconds();
	uint64_t t0 = bench_now_ns();
	run(&ld, slots, (int)sessions);
	double wall = (double)(bench_now_ns() - t0) / 1e9;
	double cpu = bench_cpu_seconds() - cpu0;

	printf("smtp_load: %lu messages from %zu files, %ld sessions at once, "
	    "%s\n", ld.count, nmails, sessions, ld.rcpt_only ?
	    "up to RCPT TO only" : "one message per session");
	printf("wall:               %.3f s\n", wall);
	printf("rate:               %.1f sessions/s\n",
	    wall > 0 ? (double)ld.done / wall : 0);
	printf("session:            p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
	    bench_lat_percentile(&ld.lat, 50) / 1e6,
	    bench_lat_percentile(&ld.lat, 99) / 1e6,
	    bench_lat_percentile(&ld.lat, 100) / 1e6);
	printf("outcomes:           %lu accepted, %lu deferred (4xx), "
	    "%lu rejected (5xx), %lu errors\n", ld.accepted, ld.deferred,
	    ld.rejected, ld.errors);
	printf("cpu of smtp_load:   %.3f ms/message (%.2f s user+sys)\n",
	    ld.done ? cpu * 1000.0 / (double)ld.done : 0, cpu);

	if (ld.out != NULL)
		fclose(ld.out);
	free(slots);
	bench_lat_free(&ld.lat);
	wire_free(ld.msgs, ld.nmsgs);
	bench_mail_free(mails, nmails);
	return ld.errors > 0 ? 1 : 0;
}
