"""Start and stop the mail pieces an integration test needs, all on loopback.

NAME
    mta - Redis, smtp-sink, a private Postfix instance and mxguard-milter
          for integration tests, plus a swaks wrapper and a reply parser

SYNOPSIS
    from mta import Redis, SmtpSink, Postfix, Milter, swaks, free_port

    with SmtpSink(work) as sink, \\
         Milter(work, config_text) as milter, \\
         Postfix(work, "inet:127.0.0.1:%d" % milter.port, sink.port) as mx:
        res = swaks(mx.port, "a@pass.test", "b@dest.example",
                    helo="mail.pass.test", xclient_addr="192.0.2.1")
        assert res.final.code == 250
        mx.wait_delivered(1)
        msg = sink.messages()[0]

DESCRIPTION
    Every class takes a work directory (normally a tempfile.mkdtemp()) under
    which it keeps its configuration, state and logs, picks free 127.0.0.1
    ports at start time, and has start(), stop() and context-manager support.
    stop() is idempotent and is also registered with atexit, so that a test run
    that dies half way leaves no daemon behind.  Nothing here touches the
    system services or their ports (25, 53, 6379) or /etc/postfix/main.cf.

    Redis(workdir)
        redis-server on 127.0.0.1:.port, no persistence, --daemonize no.
        ping() sends a RESP PING over a raw socket and returns True on +PONG.

    SmtpSink(workdir)
        /usr/sbin/smtp-sink on 127.0.0.1:.port, dumping each transaction into
        .dump_dir.  messages() returns the completed ones (a transaction whose
        dump file smtp-sink still holds open is left out) as SinkMessage
        objects, oldest first; clear() deletes them.

    Postfix(workdir, milter_socket, relay_port, smtpd_port=None)
        A private instance: its own config, queue and data directories, smtpd
        on 127.0.0.1:.port with smtpd_milters = milter_socket (None or "" for
        no milter), XCLIENT allowed from 127.0.0.0/8, relaying everything to
        smtp-sink at [127.0.0.1]:relay_port, logging to .log_path.
        log() returns the log text; queue() the queued messages (postqueue -j,
        a list of dicts); flush() asks for delivery of deferred mail;
        wait_delivered(n, timeout, sink=None) polls until the sink holds n
        messages (the sink passed to the constructor as .sink, or the one
        given) and returns them; wait_queue_empty(timeout).

    Milter(workdir, config_text, binary=None)
        Writes config_text to <workdir>/milter-N.conf and runs
        `mxguard-milter -f -c FILE`, stdout and stderr to <workdir>/milter-N.log.
        .port is read from "socket = inet:PORT@HOST" in config_text.  start()
        returns once the socket accepts TCP connections; stop() sends SIGTERM
        and raises MilterShutdownError unless the process exits within
        10 seconds (it is then killed).  .returncode holds the exit status.

    swaks(port, mail_from, rcpt_to, helo=..., xclient_addr=..., ...)
        Runs swaks against 127.0.0.1:port through XCLIENT and returns a
        SwaksResult: .rc (exit code), .transcript (stdout + stderr), .replies
        (every server reply with the stage it answered) and .final (the reply
        that decided the transaction: the first refusal, else the reply to the
        end of DATA).

DIAGNOSTICS
    HarnessError when a daemon does not come up in time (the message quotes the
    tail of its log).  Ports are picked by binding port 0, so a race with an
    unrelated process is possible but harmless in practice.
"""

import atexit
import errno
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MILTER_BINARY = os.environ.get("MXGUARD_MILTER",
                               os.path.join(REPO_ROOT, "build", "mxguard-milter"))
POSTFIX_BIN = "/usr/sbin/postfix"
POSTQUEUE_BIN = "/usr/sbin/postqueue"
SMTP_SINK_BIN = "/usr/sbin/smtp-sink"
REDIS_BIN = "/usr/bin/redis-server"
SWAKS_BIN = "/usr/bin/swaks"
POSTFIX_USER = "postfix"


class HarnessError(Exception):
    """A daemon could not be started or stopped as the harness expects."""


class MilterShutdownError(HarnessError):
    """mxguard-milter did not exit within its time limit after SIGTERM."""


# ---------------------------------------------------------------- helpers

def daemon_config(text):
    """A daemon config as the tests run it: as root, mxguard-milter and
    mxguard-policy refuse to start without [milter] user, so a config that
    names none runs as root explicitly (user = root)."""
    if re.search(r"^\s*user\s*=", text, re.M):
        return text
    return text.rstrip("\n") + "\n\n[milter]\nuser = root\n"


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port, host="127.0.0.1", timeout=0.5):
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid):
    """True when a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            # state is the field after the parenthesised command name
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, timeout, interval=0.05):
    """Poll predicate until it returns a true value or timeout seconds pass.

    Returns the last value of predicate (false on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def tail(path, nlines=30):
    """The last nlines lines of a text file, or a note that it is missing."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-nlines:])
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e.strerror)


def ensure_traversable(path):
    """Let unprivileged daemons (postfix user) reach path: 0755 on it and on
    each parent we own that is 0700 (tempfile.mkdtemp makes those)."""
    path = os.path.abspath(path)
    while path not in ("/", ""):
        st = os.stat(path)
        if st.st_uid == os.getuid() and (st.st_mode & 0o005) != 0o005 \
                and not (st.st_mode & 0o1000):
            os.chmod(path, (st.st_mode & 0o7777) | 0o755)
        path = os.path.dirname(path)


_running = []


def _stop_all_at_exit():
    for obj in list(reversed(_running)):
        try:
            obj.stop()
        except Exception as e:  # keep stopping the others
            sys.stderr.write("harness: stopping %r at exit: %s\n" % (obj, e))


atexit.register(_stop_all_at_exit)


class _Service:
    """start/stop bookkeeping shared by the daemons below."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _track(self):
        if self not in _running:
            _running.append(self)

    def _untrack(self):
        if self in _running:
            _running.remove(self)


def _die_with_parent():
    """preexec_fn: SIGTERM this child when the harness process dies, even by
    SIGKILL (best effort: a child that changes its uid loses the setting)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


def _terminate(proc, grace=5.0):
    """SIGTERM a Popen, then SIGKILL after grace seconds; reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# ---------------------------------------------------------------- Redis

class Redis(_Service):
    """redis-server on 127.0.0.1, without persistence."""

    def __init__(self, workdir, port=None):
        self.workdir = os.path.join(workdir, "redis")
        self.port = port
        self.proc = None
        self.log_path = os.path.join(self.workdir, "redis.log")

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        argv = [REDIS_BIN,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--dir", self.workdir,
                "--logfile", self.log_path,
                "--pidfile", os.path.join(self.workdir, "redis.pid")]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self._track()
        if not wait_for(lambda: self.proc.poll() is not None or self.ping(), 10):
            self.stop()
            raise HarnessError("redis-server did not answer PING on port %d:\n%s"
                               % (self.port, tail(self.log_path)))
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            self.stop()
            raise HarnessError("redis-server exited with %s:\n%s"
                               % (rc, tail(self.log_path)))
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command(self, *args, timeout=2.0):
        """Send one command in RESP; return the first reply line (str)."""
        req = b"*%d\r\n" % len(args)
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            req += b"$%d\r\n%s\r\n" % (len(b), b)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(req)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n", 1)[0].decode("latin-1")

    def ping(self):
        """True when the server answers PING with +PONG."""
        try:
            return self.command("PING", timeout=0.5) == "+PONG"
        except OSError:
            return False

    def stop(self):
        _terminate(self.proc)
        self._untrack()

    def __repr__(self):
        return "Redis(port=%s, pid=%s)" % (self.port, self.pid)


# ---------------------------------------------------------------- smtp-sink

class SinkMessage:
    """One transaction captured by smtp-sink.

    .path, .client_addr, .helo, .mail_from, .rcpt_to (list), .text (the
    message as received: headers, blank line, body; LF line ends),
    .headers (list of (name, value) with folded lines joined by "\\n"),
    .body.  header(name) returns all values of that header, in order."""

    def __init__(self, path, raw):
        self.path = path
        self.raw = raw
        self.client_addr = None
        self.client_proto = None
        self.helo = None
        self.mail_args = None
        self.rcpt_args = []
        lines = raw.split("\n")
        i = 0
        # smtp-sink's own records, up to and including its 3-line Received:
        while i < len(lines):
            line = lines[i]
            name, _, value = line.partition(": ")
            if name == "X-Client-Addr":
                self.client_addr = value
            elif name == "X-Client-Proto":
                self.client_proto = value
            elif name == "X-Helo-Args":
                self.helo = value
            elif name == "X-Mail-Args":
                self.mail_args = value
            elif name == "X-Rcpt-Args":
                self.rcpt_args.append(value)
            elif name == "Received":
                i += 3
                break
            else:
                break
            i += 1
        text = "\n".join(lines[i:])
        # smtp-sink ends the dump with one empty line after the data
        if text.endswith("\n\n"):
            text = text[:-1]
        self.text = text
        head, sep, body = text.partition("\n\n")
        if not sep and not text.startswith("\n"):
            head, body = text, ""
        self.body = body
        self.headers = []
        for line in head.split("\n"):
            if not line:
                continue
            if line[0] in " \t" and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + "\n" + line)
            else:
                n, _, v = line.partition(":")
                self.headers.append((n, v.lstrip(" \t")))

    @staticmethod
    def _address(args):
        if args is None:
            return None
        m = re.match(r"\s*<([^>]*)>", args)
        return m.group(1) if m else args.split()[0]

    @property
    def mail_from(self):
        return self._address(self.mail_args)

    @property
    def rcpt_to(self):
        return [self._address(a) for a in self.rcpt_args]

    def header(self, name):
        """All values of header name (case-insensitive), unfolded to one line."""
        return [re.sub(r"\n[ \t]+", " ", v) for n, v in self.headers
                if n.lower() == name.lower()]

    def __repr__(self):
        return "SinkMessage(%s, from=%r, to=%r)" % (
            os.path.basename(self.path), self.mail_from, self.rcpt_to)


class SmtpSink(_Service):
    """Postfix's smtp-sink capturing each transaction to its own file."""

    def __init__(self, workdir, port=None):
        self.workdir = os.path.join(workdir, "sink")
        self.dump_dir = os.path.join(self.workdir, "dump")
        self.log_path = os.path.join(self.workdir, "smtp-sink.log")
        self.port = port
        self.proc = None

    def start(self):
        os.makedirs(self.dump_dir, exist_ok=True)
        ensure_traversable(self.dump_dir)
        # it writes the dump files after dropping privileges to -u USER
        shutil.chown(self.dump_dir, user=POSTFIX_USER)
        if self.port is None:
            self.port = free_port()
        # template: strftime + a random hex suffix is appended by smtp-sink
        template = os.path.join(self.dump_dir, "%Y%m%d%H%M%S.")
        argv = [SMTP_SINK_BIN, "-u", POSTFIX_USER, "-d", template,
                "-h", "sink.test.local", "-4",
                "127.0.0.1:%d" % self.port, "128"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self._track()
        if not wait_for(lambda: self.proc.poll() is not None
                        or port_accepts(self.port), 10) or self.proc.poll() is not None:
            self.stop()
            raise HarnessError("smtp-sink did not listen on port %d:\n%s"
                               % (self.port, tail(self.log_path)))
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _open_files(self):
        """Dump files smtp-sink holds open (transactions still in progress)."""
        open_paths = set()
        if self.proc is None or self.proc.poll() is not None:
            return open_paths
        fd_dir = "/proc/%d/fd" % self.proc.pid
        try:
            for fd in os.listdir(fd_dir):
                try:
                    open_paths.add(os.readlink(os.path.join(fd_dir, fd)))
                except OSError:
                    pass
        except OSError:
            pass
        return open_paths

    def message_paths(self):
        """Paths of completed dump files, oldest first."""
        busy = self._open_files()
        paths = [p for p in glob.glob(os.path.join(self.dump_dir, "**", "*"),
                                      recursive=True)
                 if os.path.isfile(p) and p not in busy]
        def key(p):
            try:
                return (os.stat(p).st_mtime_ns, p)
            except OSError:
                return (0, p)
        return sorted(paths, key=key)

    def messages(self):
        """Completed transactions as SinkMessage objects, oldest first."""
        out = []
        for p in self.message_paths():
            try:
                with open(p, encoding="utf-8", errors="surrogateescape") as f:
                    out.append(SinkMessage(p, f.read()))
            except FileNotFoundError:
                pass
        return out

    def clear(self):
        """Delete the completed dump files."""
        for p in self.message_paths():
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        _terminate(self.proc)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        self._untrack()

    def __repr__(self):
        return "SmtpSink(port=%s, pid=%s)" % (self.port, self.pid)


# ---------------------------------------------------------------- Postfix

_MASTER_CF = """\
# Private test instance written by tests/harness/mta.py. No chroot.
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

_MAIN_CF = """\
# Private test instance written by tests/harness/mta.py.
compatibility_level = 3.6
config_directory = {config_dir}
queue_directory = {queue_dir}
data_directory = {data_dir}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-test
maillog_file = {log_path}
maillog_file_prefixes = {log_dir}

myhostname = mx.test.local
mydomain = test.local
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
notify_classes =

inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks_style = host
mynetworks = 127.0.0.0/8

# Every recipient goes to smtp-sink; no step may need DNS.
relayhost = [127.0.0.1]:{relay_port}
default_transport = smtp:[127.0.0.1]:{relay_port}
relay_transport = smtp:[127.0.0.1]:{relay_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtp_address_preference = ipv4
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_peername_lookup = no

# Anyone may relay to any domain: this instance only listens on loopback.
# (smtpd refuses to start unless some reject_unauth_destination is present;
# relay_domains = static:ALL makes every domain a relay domain.)
relay_domains = static:ALL
relay_recipient_maps =
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = permit
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_helo_required = no
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_junk_command_limit = 1000
smtpd_client_connection_rate_limit = 0
in_flow_delay = 0

smtpd_milters = {milters}
non_smtpd_milters =
milter_default_action = tempfail
milter_protocol = 6
milter_connect_timeout = 5s
milter_command_timeout = 20s
milter_content_timeout = 20s

# Fast queue: a deferred message is retried within a second or two.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 0
smtp_connect_timeout = 5s
"""


class Postfix(_Service):
    """A private Postfix instance under <workdir>/postfix."""

    def __init__(self, workdir, milter_socket, relay_port, smtpd_port=None,
                 sink=None, extra_main_cf=None):
        self.root = os.path.join(os.path.abspath(workdir), "postfix")
        self.config_dir = os.path.join(self.root, "etc")
        self.queue_dir = os.path.join(self.root, "spool")
        self.data_dir = os.path.join(self.root, "lib")
        self.log_path = os.path.join(os.path.abspath(workdir), "postfix.log")
        self.milter_socket = milter_socket or ""
        self.relay_port = relay_port
        self.port = smtpd_port
        self.sink = sink
        self.extra_main_cf = extra_main_cf or {}
        self.master_pid = None
        self._started = False

    # -- commands

    def _run(self, *argv, check=True, timeout=60):
        p = subprocess.run(list(argv), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, text=True, errors="replace")
        if check and p.returncode != 0:
            raise HarnessError("%s exited with %d:\n%s\n--- postfix log:\n%s"
                               % (" ".join(argv), p.returncode, p.stdout,
                                  tail(self.log_path)))
        return p

    def postfix(self, *args, check=True):
        """Run `postfix -c CONFIG_DIR args...`; returns CompletedProcess."""
        return self._run(POSTFIX_BIN, "-c", self.config_dir, *args, check=check)

    def postconf(self, *args):
        return self._run("/usr/sbin/postconf", "-c", self.config_dir, *args).stdout

    # -- lifecycle

    def write_config(self):
        for d in (self.config_dir, self.queue_dir, self.data_dir):
            os.makedirs(d, exist_ok=True)
        ensure_traversable(self.root)
        # Postfix wants its queue and data directories owned as it creates
        # them: queue dir root, data dir postfix.
        os.chown(self.queue_dir, 0, 0)
        shutil.chown(self.data_dir, user=POSTFIX_USER)
        os.chmod(self.data_dir, 0o700)
        main_cf = _MAIN_CF.format(config_dir=self.config_dir,
                                  queue_dir=self.queue_dir,
                                  data_dir=self.data_dir,
                                  log_path=self.log_path,
                                  log_dir=os.path.dirname(self.log_path),
                                  relay_port=self.relay_port,
                                  milters=self.milter_socket)
        for k, v in self.extra_main_cf.items():
            main_cf += "%s = %s\n" % (k, v)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write(main_cf)
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(_MASTER_CF.format(listen="127.0.0.1:%d" % self.port))

    def start(self):
        if self.port is None:
            self.port = free_port()
        self.write_config()
        # Create the queue subdirectories with their owners and modes
        # (post-install reads /etc/postfix/postfix-files; only missing
        # directories under our own queue/data dirs are created).
        self.postfix("check")
        self._track()
        self._started = True  # so that stop() cleans up a half-done start
        self.postfix("start")
        self.master_pid = wait_for(self._read_master_pid, 10)
        ok = wait_for(lambda: self._banner() is not None, 15, interval=0.1)
        if not ok:
            self.stop()
            raise HarnessError("Postfix smtpd on port %d did not answer:\n%s"
                               % (self.port, tail(self.log_path)))
        return self

    def _read_master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _banner(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                data = s.recv(512)
                s.sendall(b"QUIT\r\n")
                return data.decode("latin-1") if data.startswith(b"220") else None
        except OSError:
            return None

    def stop(self):
        if not self._started:
            self._untrack()
            return
        pid = self.master_pid or self._read_master_pid()
        self.postfix("stop", check=False)
        if pid and not wait_for(lambda: not pid_alive(pid), 10):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_for(lambda: not pid_alive(pid), 5)
        self._started = False
        self.master_pid = None
        self._untrack()

    def reload(self):
        self.postfix("reload")

    def set_milter(self, milter_socket):
        """Change smtpd_milters and reload (new smtpd processes use it)."""
        self.milter_socket = milter_socket or ""
        self._run("/usr/sbin/postconf", "-c", self.config_dir, "-e",
                  "smtpd_milters = %s" % self.milter_socket)
        if self._started:
            self.reload()

    # -- observation

    def log(self):
        """Postfix's log text (maillog_file)."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_for(self, queue_id):
        """Log lines that mention queue_id."""
        return [l for l in self.log().splitlines() if queue_id in l]

    def queue(self):
        """Messages in the queue (postqueue -j): a list of dicts."""
        p = self._run(POSTQUEUE_BIN, "-c", self.config_dir, "-j")
        return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]

    def flush(self):
        """postqueue -f: deliver deferred mail now."""
        self._run(POSTQUEUE_BIN, "-c", self.config_dir, "-f")

    def wait_queue_empty(self, timeout=10):
        return wait_for(lambda: self.queue() == [], timeout, interval=0.2)

    def wait_delivered(self, n, timeout=10, sink=None):
        """Poll until the sink holds at least n messages; return them.

        Raises HarnessError on timeout, quoting the queue and the log tail."""
        sink = sink or self.sink
        if sink is None:
            raise HarnessError("wait_delivered needs a sink")
        msgs = wait_for(lambda: (lambda m: m if len(m) >= n else None)(sink.messages()),
                        timeout, interval=0.1)
        if not msgs:
            raise HarnessError("expected %d delivered message(s) within %ss, sink "
                               "has %d; queue: %s\n--- postfix log:\n%s"
                               % (n, timeout, len(sink.messages()), self.queue(),
                                  tail(self.log_path, 15)))
        return msgs

    def __repr__(self):
        return "Postfix(port=%s, master_pid=%s)" % (self.port, self.master_pid)


# ---------------------------------------------------------------- milter

class Milter(_Service):
    """mxguard-milter in the foreground, with its own config file."""

    _count = 0

    def __init__(self, workdir, config_text, binary=None, start_timeout=10):
        Milter._count += 1
        self.workdir = os.path.abspath(workdir)
        self.n = Milter._count
        self.config_text = config_text
        self.binary = binary or MILTER_BINARY
        self.config_path = os.path.join(self.workdir, "milter-%d.conf" % self.n)
        self.log_path = os.path.join(self.workdir, "milter-%d.log" % self.n)
        self.start_timeout = start_timeout
        m = re.search(r"^\s*socket\s*=\s*inet6?:(\d+)@([^\s#;]+)", config_text, re.M)
        if not m:
            raise HarnessError("config has no 'socket = inet:PORT@HOST' line")
        self.port = int(m.group(1))
        self.host = m.group(2)
        self.proc = None
        self.returncode = None

    @property
    def socket_spec(self):
        """The socket as Postfix spells it (smtpd_milters)."""
        return "inet:%s:%d" % (self.host, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise HarnessError("%s is not built" % self.binary)
        with open(self.config_path, "w") as f:
            f.write(daemon_config(self.config_text))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-f", "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self.returncode = None
        self._track()
        up = wait_for(lambda: self.proc.poll() is not None
                      or port_accepts(self.port, self.host), self.start_timeout)
        if self.proc.poll() is not None or not up:
            rc = self.proc.poll()
            self._kill()
            raise HarnessError("mxguard-milter %s (exit status %s):\n%s"
                               % ("exited" if rc is not None else
                                  "did not listen on port %d" % self.port,
                                  rc, tail(self.log_path)))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """Everything the milter wrote to stdout and stderr so far."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc is not None:
            self.returncode = self.proc.returncode
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        self._untrack()

    def stop(self, timeout=10):
        """SIGTERM; raise MilterShutdownError if not gone within timeout s."""
        if self.proc is None:
            self._untrack()
            return
        if self.proc.poll() is None:
            started = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise MilterShutdownError(
                    "mxguard-milter (pid %d) still running %ss after SIGTERM; "
                    "killed.\n%s" % (self.proc.pid, timeout, tail(self.log_path)))
            self.shutdown_seconds = time.monotonic() - started
        self._kill()

    def __repr__(self):
        return "Milter(port=%s, pid=%s)" % (self.port, self.pid)


# ---------------------------------------------------------------- swaks

class Reply:
    """One SMTP reply: .stage (CONNECT, EHLO, XCLIENT, HELO-AFTER-XCLIENT,
    MAIL, RCPT, DATA, DOT, QUIT, ...), .code (int), .enhanced ("5.7.23" or
    None), .text (text after the codes; lines of a multi-line reply joined by
    "\\n"), .lines (raw)."""

    def __init__(self, stage, lines):
        self.stage = stage
        self.lines = lines
        self.code = int(lines[-1][:3])
        texts = []
        self.enhanced = None
        for l in lines:
            t = l[4:]
            m = re.match(r"([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)", t)
            if m:
                self.enhanced = self.enhanced or m.group(1)
                t = t[m.end():]
            texts.append(t)
        self.text = "\n".join(texts)

    def __str__(self):
        return " / ".join(self.lines)

    def __repr__(self):
        return "Reply(%s, %r)" % (self.stage, str(self))


class SwaksResult:
    """Outcome of one swaks run: .rc, .transcript, .replies, .final."""

    def __init__(self, rc, transcript, argv):
        self.rc = rc
        self.transcript = transcript
        self.argv = argv
        self.replies = parse_swaks_transcript(transcript)
        self.final = decisive_reply(self.replies)

    @property
    def queue_id(self):
        """Postfix queue id from "250 2.0.0 Ok: queued as ID", if any."""
        for r in self.replies:
            m = re.search(r"queued as ([0-9A-Za-z]+)", r.text)
            if m:
                return m.group(1)
        return None

    def reply(self, stage):
        """The last reply to stage, or None."""
        found = [r for r in self.replies if r.stage == stage]
        return found[-1] if found else None

    def __repr__(self):
        return "SwaksResult(rc=%s, final=%r)" % (self.rc, self.final)


_SENT = re.compile(r"^ *(?:->|~>|\*\*>|\*~>) (.*)$")
_RECV = re.compile(r"^ *(?:<-|<~|<\*\*|<~\*)\s*(\d{3}(?:[ -].*)?)$")


def _stage_of(command, seen_xclient):
    word = command.split(" ", 1)[0].upper()
    if word in ("EHLO", "HELO", "LHLO"):
        return "HELO-AFTER-XCLIENT" if seen_xclient else "EHLO"
    if word.startswith("MAIL"):
        return "MAIL"
    if word.startswith("RCPT"):
        return "RCPT"
    return word  # DATA, XCLIENT, QUIT, RSET, STARTTLS, AUTH, NOOP, BDAT...


def parse_swaks_transcript(transcript):
    """Server replies in a swaks transcript, each tagged with the stage it
    answers: the last client command before it, or DOT for the reply to the
    message content (everything sent after a 354)."""
    replies = []
    stage = "CONNECT"
    seen_xclient = False
    in_data = False
    current = []
    for line in transcript.splitlines():
        ms = _SENT.match(line)
        if ms:
            if in_data:
                stage = "DOT"
            else:
                stage = _stage_of(ms.group(1), seen_xclient)
                if stage == "XCLIENT":
                    seen_xclient = True
            continue
        mr = _RECV.match(line)
        if mr:
            text = mr.group(1)
            current.append(text)
            if len(text) == 3 or text[3] == " ":
                reply = Reply(stage, current)
                replies.append(reply)
                current = []
                in_data = stage == "DATA" and reply.code == 354
    if current:
        replies.append(Reply(stage, current))
    return replies


def decisive_reply(replies):
    """The reply that decided the transaction: the first 4xx/5xx reply
    before QUIT, else the reply to the end of DATA, else the last reply."""
    for r in replies:
        if r.stage != "QUIT" and r.code >= 400:
            return r
    for r in replies:
        if r.stage == "DOT":
            return r
    return replies[-1] if replies else None


def swaks(port, mail_from, rcpt_to, helo="client.example", xclient_addr=None,
          xclient_name="host.example", xclient_helo=None, headers=(),
          body=None, data=None, subject=None, extra_args=(), timeout=60):
    """Send one message with swaks to 127.0.0.1:port and parse the result.

    mail_from may be "" or "<>" for the null sender.  rcpt_to is a string or
    a list.  xclient_addr (e.g. "192.0.2.10") makes Postfix, and the milter,
    see that client instead of 127.0.0.1; set it to None to skip XCLIENT.
    headers are complete header lines added to the default message (repeat a
    name freely); data replaces the whole message (swaks tokens allowed)."""
    if isinstance(rcpt_to, str):
        rcpt_to = [rcpt_to]
    argv = [SWAKS_BIN, "--server", "127.0.0.1", "--port", str(port),
            "--from", mail_from if mail_from not in ("", None) else "<>",
            "--to", ",".join(rcpt_to), "--helo", helo,
            "--timeout", "%ds" % timeout]
    if xclient_addr:
        argv += ["--xclient-addr", xclient_addr]
        if xclient_name:
            argv += ["--xclient-name", xclient_name]
        if xclient_helo:
            argv += ["--xclient-helo", xclient_helo]
    for h in headers:
        argv += ["--add-header", h]
    if subject is not None:
        argv += ["--header", "Subject: %s" % subject]
    if body is not None:
        argv += ["--body", body]
    if data is not None:
        argv += ["--data", data]
    argv += list(extra_args)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, errors="replace",
                       timeout=timeout + 15)
    return SwaksResult(p.returncode, p.stdout, argv)
