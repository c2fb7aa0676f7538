#!/usr/bin/python3
"""The filter comparison of `make bench`: mxguard beside rspamd and the
classic OpenDKIM + OpenDMARC + postgrey stack, under one Postfix, in one run.

USAGE
    /usr/bin/python3 tests/bench/compare.py [--build DIR] [--messages N]
        [--seed S] [--sessions N] [--repeats N] [--warmup N]
        [--configs postfix,mxguard,rspamd,classic] [--regenerate] [--keep]
        [--no-install] [--results FILE]

    run.py calls the same code as its last stage (`run.py --only compare`);
    this entry point runs the comparison alone.  Figures, never a test.

WHAT IT MEASURES
    For each configuration, the same corpus (run.py's generator, 2,000
    messages by default, cached in tests/bench/.cache/corpus-N-sS/) sent by
    build/bench/smtp_load (one process, N sessions in flight, one message
    per session, each through XCLIENT with its TEST-NET client) to a
    private Postfix that relays to smtp-sink:

      postfix   Postfix alone: the ceiling.
      mxguard   + mxguard-milter, every check on: SPF, DKIM, DMARC
                (treewalk), rules/*.rules, two DNS lists (client and URI,
                private zones), greylisting (triplet, at RCPT TO, in its own
                Redis).
      rspamd    + rspamd 3.4 through its proxy worker in milter mode (proxy ->
                normal worker, controller, hs_helper), its stock rules and
                modules with SPF, DKIM, DMARC, ARC, greylisting, history,
                replies and Bayes on its own Redis; the same two DNS lists
                replace its internet ones; fuzzy_check, url_redirector, asn
                and the phishtank/openphish feeds are off (they need the
                internet).
      classic   + opendkim (verify) and opendmarc (SPFSelfValidate, libspf2)
                as milters, postgrey (check_policy_service, at RCPT TO).

    Every filter runs in "mark" mode, so that every message takes the same
    way through Postfix and the delivered count must equal the sent count:
    mxguard with [dmarc] enforce = no and [actions] reject = off, rspamd with
    its reject threshold out of reach, opendmarc with RejectFailures false
    (its default).  Greylisting runs its lookups but defers no benchmark
    message: mxguard and postgrey (delay 1 s) learn every triplet of the
    corpus in two "prime" passes that stop at RCPT TO (2 s apart) before the
    first timed run; rspamd greylists by score only, so its
    greylist_min_score is out of reach (it still reads Redis per message).

    Each configuration runs --repeats times, round-robin (postfix, mxguard,
    rspamd, classic, postfix, ...), so that a drift of the machine's speed
    moves every configuration alike.  A run: start Postfix, smtp-sink and
    the filter (fresh processes; Redis, the postgrey database and rspamd's
    hyperscan cache live for the whole comparison), send --warmup messages
    and wait for their delivery (untimed), then the timed part:

      msg/s      messages sent / seconds from the first connection to the
                 moment smtp-sink holds every accepted message.
      filter CPU user + system time of the filter's processes over the timed
                 part, per message: for each process tree (mxguard-milter;
                 rspamd's main process with its workers; opendkim;
                 opendmarc; postgrey) and each Redis, the sum over the live
                 processes of utime + stime + cutime + cstime from
                 /proc/PID/stat (cutime/cstime hold the children that
                 exited and were reaped), read before and after.
      Postfix CPU the same for the private Postfix's master process tree
                 (smtpd, cleanup, qmgr, smtp, trivial-rewrite, postlogd,
                 anvil... every process it forks).
      RSS        peak resident set of the filter's processes: VmHWM from
                 /proc/PID/status, summed over the processes alive at the end
                 of the run (rspamd's forked workers share pages, so the sum
                 overstates what they hold together).
      delivered  messages smtp-sink received; a deferred or refused message
                 is listed with the reply.

    The report (printed, and written to tests/bench/results.md) gives each
    figure's median and min-max over the repeats, the ratios mxguard/rspamd
    and mxguard/classic, and, as proof that each filter judged the mail, the
    headers it added to one delivered message and how many delivered
    messages carry them.

    --build DIR      binaries from DIR (default build)
    --messages N     corpus size (default 2000)
    --sessions N     SMTP sessions in flight (default 20)
    --repeats N      timed runs per configuration (default 3)
    --warmup N       untimed messages before each timed run (default 100)
    --configs LIST   some of postfix, mxguard, rspamd, classic
    --no-install     do not apt-get install rspamd, opendmarc, postgrey when
                     missing (their configurations are then reported as not
                     run)
    --keep           keep the work directory (configs and every log)

PROCESSES
    Everything listens on 127.0.0.1 on free ports, except opendmarc: it
    resolves through the system's resolver library (libresolv, and libspf2
    on top of it), which only ever asks port 53 of the servers in
    /etc/resolv.conf.  It runs in its own network and mount namespace
    (unshare), where /etc/resolv.conf is bind-mounted to "nameserver
    127.0.0.1" and a second unbound with the same records answers on that
    namespace's own 127.0.0.1:53; Postfix talks to it over a unix socket.
    opendkim takes an unbound configuration (ResolverConfiguration), rspamd
    and mxguard a nameserver with a port.  Every process is stopped by its
    PID; system services that installing the packages may have started
    (rspamd on 11332-11334, postgrey on 10023, ...) are neither used nor
    touched.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
sys.path.insert(0, HERE)

from dnsserver import DnsServer, DnsServerError  # noqa: E402
from mta import (HarnessError, Milter, Postfix, Redis, SinkMessage, SmtpSink,  # noqa: E402
                 ensure_traversable, free_port, pid_alive, port_accepts, tail, wait_for)

CONFIGS = ("postfix", "mxguard", "rspamd", "classic")
LABELS = {
    "postfix": "Postfix alone",
    "mxguard": "Postfix + mxguard-milter",
    "rspamd": "Postfix + rspamd",
    "classic": "Postfix + OpenDKIM + OpenDMARC + postgrey",
}
EXTRA_PACKAGES = ("rspamd", "opendmarc", "postgrey")
NEEDS = {"rspamd": ("rspamd",), "classic": ("opendkim", "opendmarc", "postgrey")}
RESULTS_MD = os.path.join(HERE, "results.md")
GREYLIST_DELAY_S = 1
AUTHSERV_ID = "mx.bench.example"

# Private DNS lists for mxguard and rspamd: a few of the spam clients are
# listed, every other name is NXDOMAIN at once (the test DNS server's "."
# zone), as an unlisted address is on a real list.
DNSBL_CLIENT_ZONE = "zen.dnsbl.bench.example"
DNSBL_URI_ZONE = "dbl.dnsbl.bench.example"


def dnsbl_records():
    recs = []
    for n in range(100, 251, 3):                 # a third of the spam clients
        recs.append(("%d.113.0.203.%s" % (n, DNSBL_CLIENT_ZONE), "A", "127.0.0.2"))
    recs.append(("cheap-deals.example.%s" % DNSBL_URI_ZONE, "A", "127.0.1.2"))
    recs.append(("bit.ly.%s" % DNSBL_URI_ZONE, "A", "127.0.1.2"))
    return recs


def mxguard_checks_config(dns, redis_port, root=ROOT):
    """Every check on, as bench_engine and the milter run it here."""
    return """\
[milter]
authserv_id = {authserv}
# the daemons refuse root without it; the benchmark runs as root
user = root
[dns]
nameserver = {ns}
[spf]
enabled = yes
[dkim]
enabled = yes
[dmarc]
enabled = yes
discovery = treewalk
[rules]
enabled = yes
files = {root}/rules/*.rules
[dnsbl]
enabled = yes
[dnsbl bench-client]
zone = {client_zone}
type = client
score = 3.0
[dnsbl bench-uri]
zone = {uri_zone}
type = uri
score = 3.0
[redis]
server = 127.0.0.1:{redis}
[greylist]
enabled = yes
mode = triplet
delay = {delay}s
""".format(authserv=AUTHSERV_ID, ns=dns.address, root=root, redis=redis_port,
           client_zone=DNSBL_CLIENT_ZONE, uri_zone=DNSBL_URI_ZONE, delay=GREYLIST_DELAY_S)


# ---------------------------------------------------------------- processes

def read_procs():
    """{pid: (ppid, ticks)}: ticks = utime + stime + cutime + cstime."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        procs[int(name)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return procs


def tree(procs, roots):
    """The pids of the process trees under roots (roots included)."""
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack = set(), [r for r in roots if r]
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in procs:
            continue
        seen.add(pid)
        stack.extend(children.get(pid, ()))
    return seen


def cpu_seconds(procs, roots):
    """CPU seconds of the trees under roots, reaped children included."""
    return sum(procs[p][1] for p in tree(procs, roots)) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kib(pid):
    """Peak resident set of a process (kB)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            m = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def pss_kib(pid):
    """Proportional set size now (kB): shared pages divided among the
    processes that share them, so that a sum over processes is fair."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def die_with_parent():
    """preexec_fn: SIGTERM this child if we die (best effort: a child that
    changes its uid loses it)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def exit_on_signals():
    """SIGTERM and SIGHUP end the benchmark through its finally blocks, so
    that every daemon it started is stopped by its PID. Install before the
    first DnsServer starts (it chains to the handler it finds)."""
    def handler(num, frame):
        raise SystemExit(128 + num)
    for num in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(num, handler)


def stop_pid(pid, grace=20.0):
    """SIGTERM, then SIGKILL after grace seconds; for processes we started."""
    if not pid or not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_for(lambda: not pid_alive(pid), grace, interval=0.1):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(lambda: not pid_alive(pid), 5)


class Daemon:
    """A foreground daemon we start with Popen and stop by its PID."""

    def __init__(self, name, argv, log_path, cwd=None):
        self.name, self.argv, self.log_path, self.cwd = name, argv, log_path, cwd
        self.proc = None

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.cwd,
                                     start_new_session=True, preexec_fn=die_with_parent)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace=20.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        self.proc = None


# ---------------------------------------------------------------- filters
#
# A filter: start(run_dir) brings it up, .milters is Postfix's smtpd_milters
# value, .main_cf extra Postfix settings, .roots the PIDs whose trees are
# its CPU and memory, .label the name of each root, .stores the long-lived
# processes (Redis) that belong to it, stop() ends it.

class NoFilter:
    name = "postfix"
    needs_prime = False
    milters = ""
    main_cf = {}

    def start(self, run_dir):
        pass

    def roots(self):
        return {}

    def stop(self):
        pass

    def marker(self, msg):
        return True


class MxguardFilter:
    name = "mxguard"
    needs_prime = True

    def __init__(self, ctx):
        self.ctx = ctx
        self.redis = Redis(os.path.join(ctx.work, "mxguard-state"))
        self.milter = None
        self.main_cf = {}

    def setup(self):
        self.redis.start()

    def start(self, run_dir):
        port = free_port()
        text = "[milter]\nsocket = inet:%d@127.0.0.1\n" % port + mxguard_checks_config(
            self.ctx.dns, self.redis.port) + """\
# mark, never refuse: every message takes the same way through Postfix
[dmarc]
enforce = no
[actions]
reject = off
"""
        self.milter = Milter(run_dir, text, binary=os.path.join(self.ctx.build, "mxguard-milter"))
        self.milter.start()
        self.milters = self.milter.socket_spec

    def roots(self):
        return {"mxguard-milter": self.milter.pid, "redis": self.redis.pid}

    def stop(self):
        if self.milter is not None:
            self.milter.stop(timeout=20)
            self.milter = None

    def teardown(self):
        self.redis.stop()

    @staticmethod
    def marker(msg):
        return any(v.startswith(AUTHSERV_ID) for v in msg.header("Authentication-Results")) \
            and bool(msg.header("X-Spam-Status"))


class RspamdFilter:
    name = "rspamd"
    needs_prime = False

    def __init__(self, ctx):
        self.ctx = ctx
        self.redis = Redis(os.path.join(ctx.work, "rspamd-state"))
        self.dbdir = os.path.join(ctx.work, "rspamd-state", "db")   # hyperscan cache too
        self.daemon = None
        self.main_cf = {}

    def setup(self):
        """Its Redis, and one untimed start and stop, in which hs_helper
        compiles the hyperscan database into the cache (DBDIR) that every
        timed run then loads, as a restarted rspamd in production does: a
        run that compiled would pay for it, and its workers would each
        hold a private copy of the database."""
        self.redis.start()
        os.makedirs(self.dbdir, exist_ok=True)
        t = time.monotonic()
        prewarm = os.path.join(self.ctx.work, "rspamd-first-start")
        os.makedirs(prewarm)
        try:
            self.start(prewarm)
        finally:
            self.stop()
        print("   rspamd: first start (hyperscan compiled into its cache) in %.0f s"
              % (time.monotonic() - t), flush=True)

    def write_config(self, run_dir, ports):
        local = os.path.join(run_dir, "rspamd", "local")
        ld, od = os.path.join(local, "local.d"), os.path.join(local, "override.d")
        for d in (ld, od, os.path.join(run_dir, "rspamd", "run"),
                  os.path.join(run_dir, "rspamd", "log")):
            os.makedirs(d, exist_ok=True)
        files = {
            # private ports for the three workers; the proxy scans through
            # the normal worker, as Debian's config does
            (od, "worker-normal.inc"): 'bind_socket = "127.0.0.1:%d";\n' % ports["normal"],
            (od, "worker-controller.inc"): 'bind_socket = "127.0.0.1:%d";\n' % ports["controller"],
            (od, "worker-proxy.inc"): """\
bind_socket = "127.0.0.1:%d";
milter = yes;
timeout = 120s;
upstream "local" {
  default = yes;
  hosts = "127.0.0.1:%d";
}
count = 1;
max_retries = 5;
discard_on_reject = false;
quarantine_on_reject = false;
spam_header = "X-Spam";
reject_message = "Spam message rejected";
""" % (ports["proxy"], ports["normal"]),
            (ld, "options.inc"): 'dns { nameserver = ["127.0.0.1:%d"]; }\n' % self.ctx.dns.port,
            (ld, "redis.conf"): 'servers = "127.0.0.1:%d";\n' % self.redis.port,
            # mark, never refuse (see the module doc)
            (od, "actions.conf"): "reject = 10000;\nadd_header = 6;\ngreylist = 4;\n",
            (ld, "greylist.conf"): "greylist_min_score = 10000;\n",
            (ld, "milter_headers.conf"):
                'use = ["authentication-results", "x-spam-status", "x-spamd-result"];\n'
                'authenticated_headers = ["authentication-results"];\n'
                'skip_local = false;\n',
            # needs the internet
            (ld, "fuzzy_check.conf"): "enabled = false;\n",
            (ld, "url_redirector.conf"): "enabled = false;\n",
            (ld, "asn.conf"): "enabled = false;\n",
            (ld, "phishing.conf"): "phishtank_enabled = false;\nopenphish_enabled = false;\n",
            # its internet lists give way to the private ones mxguard uses
            (od, "rbl.conf"): """\
rbls {
  bench_client {
    symbol = "RBL_BENCH";
    rbl = "%s";
    checks = ["from"];
    returncodes { RBL_BENCH_LISTED = "127.0.0.2"; }
  }
  bench_uri {
    symbol = "URIBL_BENCH";
    rbl = "%s";
    checks = ["urls"];
    returncodes { URIBL_BENCH_LISTED = "127.0.1.2"; }
  }
}
""" % (DNSBL_CLIENT_ZONE, DNSBL_URI_ZONE),
        }
        for (d, name), text in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        return local

    def start(self, run_dir):
        ports = {"proxy": free_port(), "normal": free_port(), "controller": free_port()}
        local = self.write_config(run_dir, ports)
        self.log_path = os.path.join(run_dir, "rspamd", "log", "rspamd.log")
        argv = ["/usr/bin/rspamd", "-f", "-i", "-u", "root", "-g", "root",
                "-c", "/etc/rspamd/rspamd.conf",
                "--var=LOCAL_CONFDIR=%s" % local, "--var=DBDIR=%s" % self.dbdir,
                "--var=RUNDIR=%s" % os.path.join(run_dir, "rspamd", "run"),
                "--var=LOGDIR=%s" % os.path.join(run_dir, "rspamd", "log")]
        self.daemon = Daemon("rspamd", argv, os.path.join(run_dir, "rspamd", "stderr.log"),
                             cwd=run_dir).start()

        # Ready: every worker listens and the normal worker matches with
        # hyperscan, not PCRE. The first start, hs_helper compiles the
        # database ("compiled N regular expressions", N > 0) and the
        # workers load it ("(normal) ... has been loaded"); later starts
        # find it in the cache (DBDIR): the main process loads it before
        # forking, and hs_helper compiles nothing ("compiled 0 ...") and
        # notifies the workers a second later.
        seen_zero = []

        def ready():
            if not self.daemon.running():
                return "exited"
            if not all(port_accepts(p) for p in ports.values()):
                return None
            try:
                with open(self.log_path, errors="replace") as f:
                    log = f.read()
            except OSError:
                return None
            if re.search(r"\(normal\).*hyperscan database of \d+ regexps has been loaded", log):
                return "ok"
            m = re.search(r"compiled (\d+) regular expressions to the hyperscan tree", log)
            if m and m.group(1) == "0":
                seen_zero.append(time.monotonic())
                return "ok" if time.monotonic() - seen_zero[0] > 2.0 else None
            return None
        state = wait_for(ready, 300, interval=0.5)
        if state != "ok":
            self.stop()
            raise HarnessError("rspamd %s:\n%s\n%s" % (
                "exited" if state == "exited" else "not ready in 300 s",
                tail(self.daemon.log_path, 10), tail(self.log_path, 20)))
        self.milters = "inet:127.0.0.1:%d" % ports["proxy"]

    def roots(self):
        return {"rspamd": self.daemon.pid, "redis": self.redis.pid}

    def stop(self):
        if self.daemon is not None:
            self.daemon.stop(grace=30)
            self.daemon = None

    def teardown(self):
        self.redis.stop()

    @staticmethod
    def marker(msg):
        return bool(msg.header("X-Spamd-Result"))


NS_SCRIPT = """\
#!/bin/sh
# opendmarc's own network and mount namespace (tests/bench/compare.py):
# its resolver can only ask port 53 of /etc/resolv.conf's servers.
set -e
ip link set lo up
mount --bind "$1/resolv.conf" /etc/resolv.conf
/usr/sbin/unbound -d -c "$1/dns/unbound.conf" >"$1/dns/unbound.log" 2>&1 &
echo $! >"$1/unbound.pid"
/usr/sbin/opendmarc -f -c "$1/opendmarc.conf" >"$1/opendmarc.log" 2>&1 &
echo $! >"$1/opendmarc.pid"
wait
"""


class ClassicFilter:
    name = "classic"
    needs_prime = True

    def __init__(self, ctx):
        self.ctx = ctx
        self.pgdb = os.path.join(ctx.work, "postgrey-state")
        self.opendkim = self.ns = self.postgrey = None
        self.dmarc_pid = self.ns_dns_pid = None

    def setup(self):
        os.makedirs(self.pgdb, exist_ok=True)
        ensure_traversable(self.pgdb)
        shutil.chown(self.pgdb, user="postgrey", group="postgrey")

    def start(self, run_dir):
        d = os.path.join(run_dir, "classic")
        nsd = os.path.join(d, "ns")
        os.makedirs(os.path.join(nsd, "dns"), exist_ok=True)
        ensure_traversable(nsd)

        # opendkim: verify only; its libunbound forwards to our DNS server
        # (Nameservers takes unbound's ADDR@PORT; a ResolverConfiguration
        # file made it die at the first concurrent key lookups: "fatal flex
        # scanner internal error", unbound's config parser is not
        # thread-safe and opendkim's resolver starts lazily)
        dkim_port = free_port()
        with open(os.path.join(d, "opendkim.conf"), "w") as f:
            f.write("""\
Mode v
Socket inet:{port}@127.0.0.1
PidFile {d}/opendkim.pid
AuthservID {authserv}
AlwaysAddARHeader yes
Nameservers 127.0.0.1@{dns}
Syslog yes
UMask 002
""".format(port=dkim_port, d=d, authserv=AUTHSERV_ID, dns=self.ctx.dns.port))
        self.opendkim = Daemon("opendkim", ["/usr/sbin/opendkim", "-f", "-x",
                                            os.path.join(d, "opendkim.conf")],
                               os.path.join(d, "opendkim.log"), cwd=d).start()

        # opendmarc in its namespace, with a second unbound on its 127.0.0.1:53
        ns_dns = DnsServer(os.path.join(nsd, "dns"), port=53, ttl=3600)
        ns_dns.set_records(self.ctx.records)
        with open(os.path.join(nsd, "dns", "unbound.conf"), "w") as f:
            f.write(ns_dns.config_text())
        with open(os.path.join(nsd, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
        self.dmarc_sock = os.path.join(nsd, "opendmarc.sock")
        with open(os.path.join(nsd, "opendmarc.conf"), "w") as f:
            f.write("""\
AuthservID {authserv}
TrustedAuthservIDs {authserv}
Socket local:{sock}
PidFile {nsd}/opendmarc.pid.own
UMask 000
SPFSelfValidate true
SPFIgnoreResults false
RejectFailures false
FailureReports false
RequiredHeaders false
Syslog yes
""".format(authserv=AUTHSERV_ID, sock=self.dmarc_sock, nsd=nsd))
        script = os.path.join(nsd, "ns.sh")
        with open(script, "w") as f:
            f.write(NS_SCRIPT)
        self.ns = Daemon("namespace", ["/usr/bin/unshare", "--net", "--mount", "--propagation",
                                       "private", "/bin/sh", script, nsd],
                         os.path.join(nsd, "ns.log"), cwd=nsd).start()

        # postgrey, default whitelists, delay 1 s, its database kept
        pg_port = free_port()
        self.postgrey = Daemon("postgrey", [
            "/usr/sbin/postgrey", "--inet=127.0.0.1:%d" % pg_port, "--dbdir=%s" % self.pgdb,
            "--delay=%d" % GREYLIST_DELAY_S, "--user=postgrey", "--group=postgrey"],
            os.path.join(d, "postgrey.log"), cwd=d).start()

        def up():
            if not (self.opendkim.running() and self.ns.running() and self.postgrey.running()):
                return "exited"
            if not (port_accepts(dkim_port) and port_accepts(pg_port)
                    and os.path.exists(self.dmarc_sock)):
                return None
            try:
                with open(os.path.join(nsd, "opendmarc.pid")) as f:
                    self.dmarc_pid = int(f.read())
                with open(os.path.join(nsd, "unbound.pid")) as f:
                    self.ns_dns_pid = int(f.read())
            except (OSError, ValueError):
                return None
            return "ok"
        state = wait_for(up, 30, interval=0.2)
        if state != "ok":
            logs = "\n".join("--- %s\n%s" % (p, tail(p, 8)) for p in (
                self.opendkim.log_path, self.ns.log_path, os.path.join(nsd, "opendmarc.log"),
                os.path.join(nsd, "dns", "unbound.log"), self.postgrey.log_path))
            self.stop()
            raise HarnessError("classic stack %s:\n%s" % (
                "exited" if state == "exited" else "not up in 30 s", logs))
        self.milters = "inet:127.0.0.1:%d, unix:%s" % (dkim_port, self.dmarc_sock)
        self.main_cf = {"smtpd_recipient_restrictions":
                        "check_policy_service inet:127.0.0.1:%d, permit" % pg_port}

    def roots(self):
        return {"opendkim": self.opendkim.pid if self.opendkim else None,
                "opendmarc": self.dmarc_pid,
                "postgrey": self.postgrey.pid if self.postgrey else None}

    def stop(self):
        # opendmarc and the namespace's unbound by PID: the shell then ends
        stop_pid(self.dmarc_pid)
        stop_pid(self.ns_dns_pid, grace=5)
        for daemon in (self.ns, self.opendkim, self.postgrey):
            if daemon is not None:
                daemon.stop()
        self.opendkim = self.ns = self.postgrey = None
        self.dmarc_pid = self.ns_dns_pid = None

    def teardown(self):
        pass

    @staticmethod
    def marker(msg):
        ar = " ".join(msg.header("Authentication-Results"))
        return "dkim=" in ar and "dmarc=" in ar


# ---------------------------------------------------------------- one run

class BenchPostfix(Postfix):
    """The harness's private Postfix with some parameters changed in place
    (postconf -e), not appended: a repeated parameter makes every Postfix
    process log a warning, which would count as Postfix's work."""

    def __init__(self, *args, settings=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.settings = dict(settings or {})

    def write_config(self):
        super().write_config()
        if self.settings:
            self._run("/usr/sbin/postconf", "-c", self.config_dir, "-e",
                      *("%s = %s" % kv for kv in self.settings.items()))


class Context:
    """What every run shares."""

    def __init__(self, args, work, build, msgdir, records, dns):
        self.args, self.work, self.build, self.msgdir = args, work, build, msgdir
        self.records, self.dns = records, dns
        self.load_bin = os.path.join(build, "bench", "smtp_load")
        self.run_no = 0


def smtp_load(ctx, port, count, start=0, rcpt_only=False, replies=None):
    argv = [ctx.load_bin, "-p", str(port), "-c", str(ctx.args.sessions), "-n", str(count),
            "-s", str(start)]
    if rcpt_only:
        argv.append("-R")
    if replies:
        argv += ["-o", replies]
    argv.append(ctx.msgdir)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace", timeout=900)
    out = p.stdout
    m = re.search(r"outcomes:\s+(\d+) accepted, (\d+) deferred \(4xx\), (\d+) rejected "
                  r"\(5xx\), (\d+) errors", out)
    if p.returncode not in (0, 1) or not m:
        raise HarnessError("smtp_load exited %d:\n%s" % (p.returncode, out))
    w = re.search(r"^wall:\s+([\d.]+)", out, re.M)
    cpu = re.search(r"^cpu of smtp_load:\s+([\d.]+)", out, re.M)
    return {"accepted": int(m.group(1)), "deferred": int(m.group(2)),
            "rejected": int(m.group(3)), "errors": int(m.group(4)),
            "wall": float(w.group(1)), "load_cpu_ms": float(cpu.group(1)) if cpu else 0.0,
            "output": out}


def count_files(path):
    try:
        return sum(1 for e in os.scandir(path) if e.is_file())
    except OSError:
        return 0


def wait_sink(sink, n, timeout):
    """Waits until smtp-sink holds n finished messages; returns the time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_files(sink.dump_dir) >= n and len(sink.message_paths()) >= n:
            return time.monotonic()
        time.sleep(0.02)
    return None


def prime(ctx, filt, mx):
    """Two passes up to RCPT TO, delay apart: greylisting learns the corpus."""
    notes = []
    for n in (1, 2):
        r = smtp_load(ctx, mx.port, count=ctx.corpus_size, rcpt_only=True)
        notes.append("pass %d: %d passed, %d deferred, %d refused, %d errors"
                     % (n, r["accepted"], r["deferred"], r["rejected"], r["errors"]))
        if n == 1:
            time.sleep(GREYLIST_DELAY_S + 1.2)
    print("   %s primed (%s)" % (filt.name, "; ".join(notes)), flush=True)
    filt.primed = True


def refusals(path):
    """{(stage, code, text): count} of the messages not accepted."""
    out = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 4)
                if len(parts) < 4 or (parts[3].startswith("2") and parts[2] in ("DOT", "RCPT")):
                    continue
                text = re.sub(r"\b[0-9A-F]{8,}\b|\d+ seconds", "N", parts[4] if len(parts) > 4 else "")
                key = (parts[2], parts[3], text[:100])
                out[key] = out.get(key, 0) + 1
    except OSError:
        pass
    return out


def one_run(ctx, filt, repeat):
    ctx.run_no += 1
    run_dir = os.path.join(ctx.work, "run-%02d-%s-%d" % (ctx.run_no, filt.name, repeat))
    os.makedirs(run_dir)
    ensure_traversable(run_dir)
    sink = SmtpSink(run_dir)
    mx = None
    result = {"config": filt.name, "repeat": repeat}
    try:
        sink.start()
        filt.start(run_dir)
        mx = BenchPostfix(run_dir, filt.milters, sink.port, sink=sink,
                          settings=filt.main_cf)
        mx.start()
        if filt.needs_prime and not getattr(filt, "primed", False):
            prime(ctx, filt, mx)
        if ctx.args.warmup > 0:
            w = smtp_load(ctx, mx.port, count=ctx.args.warmup,
                          start=ctx.corpus_size - ctx.args.warmup)
            if wait_sink(sink, w["accepted"], 120) is None:
                raise HarnessError("warm-up: %d accepted, smtp-sink has %d"
                                   % (w["accepted"], count_files(sink.dump_dir)))
        base = len(sink.message_paths())
        time.sleep(0.5)                          # let Postfix settle after the warm-up

        roots = filt.roots()
        procs0 = read_procs()
        f0 = {name: cpu_seconds(procs0, [pid]) for name, pid in roots.items()}
        p0 = cpu_seconds(procs0, [mx.master_pid])
        t0 = time.monotonic()
        replies = os.path.join(run_dir, "replies.txt")
        load = smtp_load(ctx, mx.port, count=ctx.args.messages, replies=replies)
        t_end = wait_sink(sink, base + load["accepted"], 180)
        procs1 = read_procs()
        if t_end is None:
            t_end = time.monotonic()
            result["drain_timeout"] = True
        f1 = {name: cpu_seconds(procs1, [pid]) for name, pid in roots.items()}
        p1 = cpu_seconds(procs1, [mx.master_pid])
        hwm = {name: sum(vm_hwm_kib(p) for p in tree(procs1, [pid]))
               for name, pid in roots.items()}
        pss = sum(pss_kib(p) for p in tree(procs1, list(roots.values())))
        n = ctx.args.messages
        delivered = len(sink.message_paths()) - base
        result.update({
            "seconds": t_end - t0,
            "rate": n / (t_end - t0),
            "load_seconds": load["wall"],
            "load_cpu_ms": load["load_cpu_ms"],
            "filter_cpu_ms": sum(f1[k] - f0[k] for k in roots) * 1000 / n,
            "filter_cpu_parts": {k: (f1[k] - f0[k]) * 1000 / n for k in roots},
            "postfix_cpu_ms": (p1 - p0) * 1000 / n,
            "rss_mib": sum(hwm.values()) / 1024,
            "rss_parts": {k: v / 1024 for k, v in hwm.items()},
            "pss_mib": pss / 1024,
            "sent": n, "accepted": load["accepted"], "deferred": load["deferred"],
            "rejected": load["rejected"], "errors": load["errors"], "delivered": delivered,
            "refusals": refusals(replies),
            "processes": len(tree(procs1, list(roots.values()))),
        })
        if repeat == 1 or not getattr(filt, "proof", None):
            filt.proof = proof(ctx, filt, sink, base)
    finally:
        if mx is not None:
            try:
                mx.stop()
            except HarnessError as e:
                result.setdefault("problems", []).append(str(e))
        try:
            filt.stop()
        except HarnessError as e:
            result.setdefault("problems", []).append(str(e))
        sink.stop()
    if not ctx.args.keep:
        shutil.rmtree(os.path.join(run_dir, "sink"), ignore_errors=True)
    return result


def proof(ctx, filt, sink, base):
    """The headers the filter added to one delivered message of the timed
    run (the same message for every filter: the corpus's first signed
    direct mail, when delivered), and how many delivered messages carry
    the filter's mark."""
    paths = sink.message_paths()[base:]
    marked, first = 0, None
    for p in paths:
        with open(p, encoding="utf-8", errors="surrogateescape") as f:
            msg = SinkMessage(p, f.read())
        if filt.marker(msg):
            marked += 1
        if first is None or (msg.header("Message-ID") or [None])[0] == ctx.proof_mid:
            first = msg
    added = []
    if first is not None:
        mid = (first.header("Message-ID") or [""])[0]
        original = ctx.originals.get(mid, [])
        seen = list(original)
        for name, value in first.headers:
            flat = re.sub(r"\n[ \t]+", " ", value)
            if (name.lower(), flat) in seen:
                seen.remove((name.lower(), flat))
                continue
            if name.lower() == "received" and "by mx.test.local" in flat:
                continue                         # Postfix's own
            added.append("%s: %s" % (name, value))
    return {"marked": marked, "delivered": len(paths), "headers": added,
            "message_id": first.header("Message-ID")[0] if first and first.header("Message-ID")
            else None}


def index_originals(msgdir):
    """Message-ID -> [(lowercase name, unfolded value)] of each corpus file,
    and the Message-ID of the first signed direct message."""
    out, chosen = {}, None
    for name in sorted(os.listdir(msgdir)):
        with open(os.path.join(msgdir, name), encoding="utf-8", errors="surrogateescape") as f:
            head = f.read().replace("\r\n", "\n").split("\n\n", 1)[0]
        headers = []
        for line in head.split("\n"):
            if line[:1] in (" ", "\t") and headers:
                headers[-1][1] += " " + line.strip()
            elif ":" in line:
                n, v = line.split(":", 1)
                headers.append([n, v.lstrip(" \t")])
        flat = [(n.lower(), re.sub(r"\s+", " ", v).strip()) for n, v in headers
                if not n.lower().startswith("x-bench-")]
        mid = next((v for n, v in flat if n == "message-id"), None)
        if mid:
            out[mid] = flat
            if chosen is None and "-direct" in name and \
                    any(n == "dkim-signature" for n, _ in flat):
                chosen = mid
    return out, chosen


# ---------------------------------------------------------------- packages

def ensure_packages(install):
    """Installs rspamd, opendmarc and postgrey when missing (as root);
    returns {package: why it is missing} for those still missing."""
    def missing():
        out = []
        for p in set(EXTRA_PACKAGES + ("opendkim", "postfix", "redis-server", "unbound")):
            r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                               text=True)
            if r.stdout.strip() != "install ok installed":
                out.append(p)
        return sorted(out)
    todo = missing()
    if todo and install:
        if os.getuid() != 0:
            return {p: "not installed, and installing needs root" for p in todo}
        print("== compare: installing %s" % " ".join(todo), flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + todo,
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout[-2000:] + r.stderr[-2000:])
        todo = missing()
    return {p: "not installed" + ("" if install else " (--no-install)") for p in todo}


# ---------------------------------------------------------------- report

def fmt_range(values, fmt):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt % med
    return (fmt + " (" + fmt + "–" + fmt + ")") % (med, min(values), max(values))


def median(values):
    return statistics.median(values) if values else None


def report(ctx, results, skipped, meta, seconds, load, started_at):
    import run as corpus                          # tests/bench/run.py
    lines = []
    by = {c: [r for r in results if r["config"] == c and "rate" in r] for c in CONFIGS}
    configs = [c for c in ctx.configs if by[c] or c in skipped]
    sizes = sorted(meta["sizes"])
    lines.append("# mxguard beside rspamd and OpenDKIM + OpenDMARC + postgrey")
    lines.append("")
    lines.append("Written by `make bench` (tests/bench/compare.py); the last run's figures. "
                 "Figures, not a test.")
    lines.append("")
    lines.append("- date: %s" % time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started_at)))
    lines.append("- machine: %s" % corpus.machine())
    lines.append("- commit: %s" % corpus.commit())
    lines.append("- load average: %.2f before, %.2f after (other work on this machine moves "
                 "every figure; the runs are round-robin so that it moves them alike)" % load)
    lines.append("- corpus: %d messages (%.1f KB mean, %.1f-%.1f KB; %s), seed %d; "
                 "%d sessions in flight, one message per session, XCLIENT with the "
                 "message's TEST-NET client; %d untimed warm-up messages per run; "
                 "%d timed run(s) per configuration, round-robin"
                 % (len(sizes), sum(sizes) / len(sizes) / 1024, sizes[0] / 1024, sizes[-1] / 1024,
                    ", ".join("%s %d" % kv for kv in sorted(meta["kinds"].items(),
                                                             key=lambda kv: -kv[1])),
                    ctx.args.seed, ctx.args.sessions, ctx.args.warmup, ctx.args.repeats))
    versions = package_versions()
    lines.append("- versions: %s" % ", ".join("%s %s" % kv for kv in versions.items()))
    lines.append("- %.0f s in all" % seconds)
    lines.append("")
    lines.append("Median (min–max) over the runs. CPU is user + system time per message of every "
                 "process of the filter (its Redis included) and of the private Postfix; peak RSS "
                 "the sum of the filter's processes' VmHWM, as asked (pages that forked workers "
                 "share count once per process); PSS their proportional set size at the end of "
                 "the run, where shared pages count once in all.")
    lines.append("")
    lines.append("| configuration | msg/s end to end | filter CPU ms/msg | Postfix CPU ms/msg "
                 "| filter peak RSS MiB | filter PSS MiB | delivered / sent |")
    lines.append("|---|---|---|---|---|---|---|")
    for c in configs:
        rs = by[c]
        if not rs:
            lines.append("| %s | not run: %s | | | | | |" % (LABELS[c],
                                                            skipped.get(c, "failed")))
            continue
        delivered = "%s / %s" % ("+".join(str(r["delivered"]) for r in rs),
                                 "+".join(str(r["sent"]) for r in rs))
        if len({r["delivered"] for r in rs}) == 1 and len({r["sent"] for r in rs}) == 1:
            delivered = "%d / %d (each run)" % (rs[0]["delivered"], rs[0]["sent"])
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            LABELS[c], fmt_range([r["rate"] for r in rs], "%.1f"),
            "-" if c == "postfix" else fmt_range([r["filter_cpu_ms"] for r in rs], "%.2f"),
            fmt_range([r["postfix_cpu_ms"] for r in rs], "%.2f"),
            "-" if c == "postfix" else fmt_range([r["rss_mib"] for r in rs], "%.1f"),
            "-" if c == "postfix" else fmt_range([r["pss_mib"] for r in rs], "%.1f"),
            delivered))
    lines.append("")

    def ratio(c, key):
        a, b = median([r[key] for r in by["mxguard"]]), median([r[key] for r in by[c]])
        return "%.2f" % (a / b) if a is not None and b else "-"
    ratio_rows = [c for c in ("rspamd", "classic") if by[c] and by["mxguard"]]
    if ratio_rows:
        lines.append("| ratio (medians) | msg/s | filter CPU | Postfix CPU | peak RSS | PSS |")
        lines.append("|---|---|---|---|---|---|")
        for c in ratio_rows:
            lines.append("| mxguard / %s | %s | %s | %s | %s | %s |" % (
                c, ratio(c, "rate"), ratio(c, "filter_cpu_ms"), ratio(c, "postfix_cpu_ms"),
                ratio(c, "rss_mib"), ratio(c, "pss_mib")))
        if by["postfix"]:
            lines.append("| mxguard / Postfix alone | %s | | %s | | |" % (
                ratio("postfix", "rate"), ratio("postfix", "postfix_cpu_ms")))
        lines.append("")

    lines.append("## Per process (medians)")
    lines.append("")
    for c in configs:
        rs = by[c]
        if not rs or c == "postfix":
            continue
        parts = sorted(rs[0]["filter_cpu_parts"])
        lines.append("- %s: CPU %s; RSS %s; load generator %.2f ms CPU/msg" % (
            LABELS[c],
            ", ".join("%s %.2f ms" % (k, median([r["filter_cpu_parts"][k] for r in rs]))
                      for k in parts),
            ", ".join("%s %.1f MiB" % (k, median([r["rss_parts"][k] for r in rs])) for k in parts),
            median([r["load_cpu_ms"] for r in rs])))
    if by["postfix"]:
        lines.append("- load generator (smtp_load) with Postfix alone: %.2f ms CPU/msg"
                     % median([r["load_cpu_ms"] for r in by["postfix"]]))
    lines.append("")

    problems = []
    for r in results:
        if r.get("refusals"):
            for (stage, code, text), n in sorted(r["refusals"].items(), key=lambda kv: -kv[1]):
                problems.append("%s run %d: %d x %s %s %s" % (r["config"], r["repeat"], n, stage,
                                                             code, text))
        if "rate" in r and r["delivered"] != r["accepted"]:
            problems.append("%s run %d: %d accepted but %d delivered%s" % (
                r["config"], r["repeat"], r["accepted"], r["delivered"],
                " (smtp-sink still short after 180 s)" if r.get("drain_timeout") else ""))
        for p in r.get("problems", []):
            problems.append("%s run %d: %s" % (r["config"], r["repeat"], p.splitlines()[0]))
    lines.append("## Not delivered")
    lines.append("")
    if problems:
        lines += ["- " + p for p in problems[:40]]
    else:
        lines.append("Every message sent was delivered, in every run.")
    lines.append("")

    lines.append("## Proof that each filter judged the mail")
    lines.append("")
    for c in configs:
        filt = ctx.filters.get(c)
        pr = getattr(filt, "proof", None) if filt else None
        if c == "postfix" or not pr:
            continue
        lines.append("%s: %d of %d delivered messages of its first run carry its headers; "
                     "those it added to %s:" % (LABELS[c], pr["marked"], pr["delivered"],
                                                pr["message_id"]))
        lines.append("")
        lines.append("```")
        lines += pr["headers"] or ["(none)"]
        lines.append("```")
        lines.append("")

    lines.append("## Not run")
    lines.append("")
    if skipped:
        lines += ["- %s: %s" % (LABELS[c], why) for c, why in skipped.items()]
    else:
        lines.append("Every configuration ran.")
    lines.append("")
    lines.append("How each figure is measured, and each filter configured: "
                 "tests/bench/README.md and tests/bench/compare.py.")
    return "\n".join(lines) + "\n"


def package_versions():
    out = {}
    for p in ("postfix", "rspamd", "opendkim", "opendmarc", "postgrey", "redis-server"):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True,
                           text=True)
        if r.returncode == 0 and r.stdout:
            out[p] = r.stdout
    return out


# ---------------------------------------------------------------- main

def add_arguments(ap, prefix=""):
    ap.add_argument("--%ssessions" % prefix, dest="sessions", type=int, default=20)
    ap.add_argument("--%srepeats" % prefix, dest="repeats", type=int, default=3)
    ap.add_argument("--%swarmup" % prefix, dest="warmup", type=int, default=100)
    ap.add_argument("--%sconfigs" % prefix, dest="configs", default=",".join(CONFIGS))
    ap.add_argument("--no-install", dest="install", action="store_false")
    ap.add_argument("--results", default=RESULTS_MD)


def run_comparison(args, build, meta, msgdir, appendix=None):
    """Runs every configuration; prints and writes the report (with
    appendix, markdown, at its end). Returns a list of problems (empty when
    every configuration ran)."""
    started_at = time.time()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        return ["compare: unknown configuration(s) %s" % ", ".join(bad)]
    args.messages = len(meta["sizes"]) if args.messages is None else args.messages
    args.warmup = min(args.warmup, len(meta["sizes"]))
    skipped, problems = {}, []
    if not os.access(os.path.join(build, "bench", "smtp_load"), os.X_OK):
        return ["compare: %s missing (make bench builds it)"
                % os.path.join(build, "bench", "smtp_load")]
    missing = ensure_packages(args.install)
    for c in configs:
        lacking = [p for p in NEEDS.get(c, ()) if p in missing]
        if lacking:
            skipped[c] = ", ".join("%s %s" % (p, missing[p]) for p in lacking)
    if "classic" in configs and "classic" not in skipped and \
            subprocess.run(["/usr/bin/unshare", "--net", "--mount", "/bin/true"]).returncode != 0:
        skipped["classic"] = ("opendmarc needs its own network namespace here (its resolver "
                              "only asks port 53), and unshare --net --mount failed")

    work = tempfile.mkdtemp(prefix="mxguard-compare-")
    ensure_traversable(work)
    import run as corpus
    records = [tuple(r) for r in meta["records"]] + dnsbl_records()
    dns = DnsServer(os.path.join(work, "dns"), ttl=3600)
    ctx = Context(args, work, build, msgdir, records, dns)
    ctx.configs = configs
    ctx.corpus_size = len(meta["sizes"])
    ctx.originals, ctx.proof_mid = index_originals(msgdir)
    ctx.filters = {}
    results = []
    try:
        dns.set_records(records)
        dns.start()
        print("== compare: %d messages x %d configurations x %d repeats, %d sessions; dns "
              "127.0.0.1:%d (pid %d), work %s" % (args.messages, len(configs), args.repeats,
                                                 args.sessions, dns.port, dns.pid, work),
              flush=True)
        makers = {"postfix": lambda: NoFilter(), "mxguard": lambda: MxguardFilter(ctx),
                  "rspamd": lambda: RspamdFilter(ctx), "classic": lambda: ClassicFilter(ctx)}
        for c in configs:
            if c in skipped:
                continue
            filt = makers[c]()
            try:
                if hasattr(filt, "setup"):
                    filt.setup()
                ctx.filters[c] = filt
            except (HarnessError, OSError) as e:
                skipped[c] = "could not be set up: %s" % str(e).splitlines()[0]
        for repeat in range(1, args.repeats + 1):
            for c in configs:
                filt = ctx.filters.get(c)
                if filt is None or c in skipped:
                    continue
                t = time.monotonic()
                try:
                    r = one_run(ctx, filt, repeat)
                except (HarnessError, OSError, subprocess.TimeoutExpired) as e:
                    problems.append("%s run %d: %s" % (c, repeat, e))
                    print("   %s run %d FAILED: %s" % (c, repeat, e), flush=True)
                    if repeat == 1:
                        skipped[c] = "failed to run: %s" % str(e).splitlines()[0]
                    continue
                results.append(r)
                print("   %-8s run %d: %6.1f msg/s, filter %6.2f ms CPU/msg, Postfix %5.2f ms "
                      "CPU/msg, RSS %6.1f MiB (PSS %.1f), %d/%d delivered (%.0f s)"
                      % (c, repeat, r["rate"], r["filter_cpu_ms"], r["postfix_cpu_ms"],
                         r["rss_mib"], r["pss_mib"], r["delivered"], r["sent"],
                         time.monotonic() - t),
                      flush=True)
    except (DnsServerError, HarnessError) as e:
        problems.append("compare: %s" % e)
    finally:
        for filt in ctx.filters.values():
            try:
                filt.stop()
                if hasattr(filt, "teardown"):
                    filt.teardown()
            except Exception as e:  # keep stopping the others
                problems.append("compare: stopping %s: %s" % (filt.name, e))
        dns.stop()

    text = report(ctx, results, skipped, meta, time.monotonic() - started,
                  (load_before, os.getloadavg()[0]), started_at)
    if appendix:
        text += "\n" + appendix
    print("\n" + text)
    if results:
        with open(args.results, "w") as f:
            f.write(text)
        print("(written to %s)" % os.path.relpath(args.results, ROOT))
    if args.keep or problems:
        print("compare work directory kept: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--keep", action="store_true")
    add_arguments(ap)
    args = ap.parse_args()
    exit_on_signals()
    import run as corpus
    meta, msgdir, note = corpus.ensure_corpus(args.messages, args.seed, args.regenerate)
    print("== corpus: %d messages, %s" % (args.messages, note), flush=True)
    problems = run_comparison(args, os.path.join(ROOT, args.build), meta, msgdir)
    if problems:
        print("\ncompare.py: %d problem(s):\n%s" % (len(problems),
                                                   "\n".join("  " + p for p in problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
