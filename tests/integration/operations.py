#!/usr/bin/python3
"""Integration tests: running mxguard's daemons as a service.

USAGE
    /usr/bin/python3 tests/integration/operations.py [-k SUBSTRING] [--build DIR]

    Privileges (run as root): the milter and the policy server bind, then
    become the configured user (nobody/nogroup here) with no supplementary
    groups; their unix sockets get socket_mode and the group; started as
    root with no user they refuse; a stale socket file is replaced, a live
    one is not; the pid file is written after the drop and removed at exit.

    Reload: a stream of messages through a real Postfix (20 sessions at
    once) while the milter's config changes and SIGUSR1 comes 10 times:
    every message gets a 2xx or 5xx reply, none is lost or tempfailed, and
    after the last reload the new reject threshold is in force.  A broken
    config on reload leaves the old one in force (mxguard reload says why,
    with file:line) and the daemon serving.  mxguard-policy reloads on
    SIGHUP.  systemd's notify protocol (READY, RELOADING) on a socket of
    the test's own.

    Logs: [log] format = json gives one JSON object per line, the per-message
    line with the documented fields.

    Install: `make install` into a temporary prefix lays out binaries,
    config (never overwritten), rules and units; `systemd-analyze verify`
    accepts the units.

    Each test prints "ok - NAME" or "not ok - NAME: REASON"; the last line
    is "N passed, M failed".
"""

import grp
import json
import os
import pwd
import re
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

from testrun import parse_args, run_suite, selected  # noqa: E402
from mta import (HarnessError, Milter, Postfix, SmtpSink, free_port,  # noqa: E402
                 port_accepts, wait_for)

BUILD = "build"
RCPT = "rcpt@dest.example"
SESSIONS = 20
RELOADS = 10

TESTS = []


def case(fn):
    TESTS.append(fn)
    return fn


def binary(name):
    return os.path.join(ROOT, BUILD, name)


def proc_status(pid):
    """/proc/PID/status as a dict of its fields."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def start_daemon(name, conf, log, extra=(), env=None):
    return subprocess.Popen([binary(name), "-f", "-c", conf] + list(extra),
                            stdin=subprocess.DEVNULL, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=env)


def stop(proc, timeout=15):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("did not stop within %ss of SIGTERM" % timeout)
    return proc.returncode


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def writable_dir(env):
    """A new directory in the work directory that anyone may write: the
    daemons that drop to nobody put their socket and pid file there."""
    d = tempfile.mkdtemp(dir=env.workdir)
    os.chmod(d, 0o777)
    return d


def wait_pidfile(proc, pidfile, log):
    """Waits for the daemon's pid file; fails with its log if it exits."""
    up = wait_for(lambda: proc.poll() is not None or os.path.exists(pidfile), 10)
    assert up and proc.poll() is None, read(log)


# ---------------------------------------------------------------- environment

class Env:
    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="mxguard-ops-")
        # The daemons read their config after dropping to nobody.
        os.chmod(self.workdir, 0o755)
        self.sink = self.postfix = self.milter = None

    def start_mta(self):
        self.sink = SmtpSink(self.workdir).start()
        self.milter_port = free_port()
        self.postfix = Postfix(self.workdir, "inet:127.0.0.1:%d" % self.milter_port,
                               self.sink.port, sink=self.sink).start()

    def start(self):
        """Nothing: each test starts the daemons it needs (start_mta)."""
        return self

    def stop(self):
        for obj in (self.postfix, self.milter, self.sink):
            if obj is not None:
                try:
                    obj.stop()
                except Exception:
                    pass
        return []


def base_config(workdir, socket_line, extra=""):
    # Only content rules: no DNS needed, and a marker rule whose score the
    # thresholds below are set around.
    rules = write(os.path.join(workdir, "ops.rules"),
                  "body MXG_OPS_MARKER /opsmarker/\nscore MXG_OPS_MARKER 5\n"
                  "describe MXG_OPS_MARKER test marker\n")
    return ("[milter]\n%s\nauthserv_id = mx.test.local\n"
            "[spf]\nenabled = no\n[dkim]\nenabled = no\n[dmarc]\nenabled = no\n"
            "[dnsbl]\nenabled = no\n[rules]\nfiles = %s\n%s" % (socket_line, rules, extra))


# ---------------------------------------------------------------- privileges

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrnam("nogroup")


@case
def test_root_without_user_refuses_to_start(env):
    d = writable_dir(env)
    conf = write(os.path.join(d, "m.conf"),
                 base_config(d, "socket = inet:%d@127.0.0.1" % free_port()))
    for name in ("mxguard-milter", "mxguard-policy"):
        log = os.path.join(d, name + ".log")
        p = start_daemon(name, conf, log)
        try:
            rc = p.wait(10)
        except subprocess.TimeoutExpired:
            stop(p)
            raise AssertionError("%s started as root with no user" % name)
        text = read(log)
        assert rc != 0 and "started as root with no [milter] user" in text, (name, rc, text)


@case
def test_milter_drops_to_user_and_sets_socket_mode_and_group(env):
    d = writable_dir(env)
    sock = os.path.join(d, "milter.sock")
    pidfile = os.path.join(d, "milter.pid")
    conf = write(os.path.join(d, "m.conf"), base_config(
        d, "socket = unix:%s\npidfile = %s\nuser = nobody\ngroup = nogroup\n"
        "socket_mode = 0660" % (sock, pidfile)))
    # A stale socket file from a crashed run: bound, never listened on.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock)
    stale.close()
    log = os.path.join(d, "milter.log")
    p = start_daemon("mxguard-milter", conf, log)
    try:
        wait_pidfile(p, pidfile, log)
        st = proc_status(p.pid)
        uids = st["Uid"].split()
        gids = st["Gid"].split()
        assert set(uids) == {str(NOBODY.pw_uid)}, st["Uid"]
        assert set(gids) == {str(NOGROUP.gr_gid)}, st["Gid"]
        assert st["Groups"] == "", "supplementary groups kept: %r" % st["Groups"]
        s = os.stat(sock)
        assert stat.S_ISSOCK(s.st_mode), s
        assert stat.S_IMODE(s.st_mode) == 0o660, oct(s.st_mode)
        assert s.st_gid == NOGROUP.gr_gid, s.st_gid
        ps = os.stat(pidfile)
        assert ps.st_uid == NOBODY.pw_uid, "pid file written before the drop"
        assert read(pidfile).strip() == str(p.pid)
        assert "removed stale socket" in read(log), read(log)
        # A second instance must not steal the live socket.
        log2 = os.path.join(d, "milter2.log")
        p2 = start_daemon("mxguard-milter", conf, log2)
        rc2 = p2.wait(10)
        assert rc2 != 0 and "another process is listening" in read(log2), read(log2)
        assert os.path.exists(sock) and p.poll() is None
    finally:
        rc = stop(p)
    assert rc == 0, (rc, read(log))
    assert not os.path.exists(pidfile), "pid file left behind"


@case
def test_policy_server_drops_to_user_with_unix_socket(env):
    d = writable_dir(env)
    sock = os.path.join(d, "policy.sock")
    pidfile = os.path.join(d, "policy.pid")
    conf = write(os.path.join(d, "p.conf"), base_config(
        d, "user = nobody\nsocket_mode = 0640",
        "[policy]\nlisten = unix:%s\npidfile = %s\n[greylist]\nenabled = no\n"
        % (sock, pidfile)))
    log = os.path.join(d, "policy.log")
    p = start_daemon("mxguard-policy", conf, log)
    try:
        wait_pidfile(p, pidfile, log)
        st = proc_status(p.pid)
        assert set(st["Uid"].split()) == {str(NOBODY.pw_uid)}, st["Uid"]
        # No group configured: the user's primary group.
        assert set(st["Gid"].split()) == {str(NOBODY.pw_gid)}, st["Gid"]
        assert st["Groups"] == ""
        s = os.stat(sock)
        assert stat.S_IMODE(s.st_mode) == 0o640, oct(s.st_mode)
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(10)
        c.connect(sock)
        c.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
                  b"client_address=192.0.2.1\nsender=a@example.org\n"
                  b"recipient=b@example.net\n\n")
        got = c.recv(4096)
        c.close()
        assert got == b"action=DUNNO\n\n", got
    finally:
        rc = stop(p)
    assert rc == 0, (rc, read(log))
    assert not os.path.exists(pidfile)


# ---------------------------------------------------------------- reload

class Load:
    """SESSIONS threads sending messages through Postfix until stopped;
    every reply is recorded."""

    def __init__(self, port):
        self.port = port
        self.replies = []          # (code, text, test_id)
        self.errors = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.seq = 0

    def one(self, n):
        with self.lock:
            self.seq += 1
            test_id = "load-%d" % self.seq
        client = "192.0.2.%d" % (10 + n)
        body = ("From: sender@example.org\r\nTo: %s\r\nSubject: load\r\n"
                "X-Test-Id: %s\r\n\r\nopsmarker\r\n" % (RCPT, test_id))
        try:
            s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
            s.ehlo("client.example")
            code, msg = s.docmd("XCLIENT", "ADDR=%s NAME=host.example" % client)
            if code != 220:
                raise RuntimeError("XCLIENT: %d %s" % (code, msg))
            s.ehlo("client.example")
            s.mail("sender@example.org")
            s.rcpt(RCPT)
            code, msg = s.data(body.encode())
            s.quit()
        except smtplib.SMTPDataError as e:
            code, msg = e.smtp_code, e.smtp_error
        except Exception as e:  # a lost connection is a failure to record
            with self.lock:
                self.errors.append("%s: %r" % (test_id, e))
            return
        with self.lock:
            self.replies.append((code, msg.decode(errors="replace")
                                 if isinstance(msg, bytes) else str(msg), test_id))

    def worker(self, n):
        while not self.stopping.is_set():
            self.one(n)

    def run(self):
        self.threads = [threading.Thread(target=self.worker, args=(i,), daemon=True)
                        for i in range(SESSIONS)]
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(120)


def reload_milter(pidfile, conf, expect_ok=True):
    p = subprocess.run([binary("mxguard"), "reload", "-c", conf, "--pidfile", pidfile,
                        "--json"], capture_output=True, text=True, timeout=90)
    out = json.loads(p.stdout) if p.stdout.strip() else {}
    if expect_ok:
        assert p.returncode == 0 and out.get("outcome") == "reloaded", (p.returncode, p.stdout, p.stderr)
    return p.returncode, out


@case
def test_reload_under_load_loses_nothing_and_takes_the_new_threshold(env):
    if env.postfix is None:
        env.start_mta()
    d = env.workdir
    pidfile = os.path.join(d, "reload-milter.pid")
    sock = "socket = inet:%d@127.0.0.1\npidfile = %s\nuser = root" % (env.milter_port, pidfile)
    # Alternating: the marker (5 points) over or under add_header; never a
    # reject until the last config.
    def config(add_header, reject="off"):
        return base_config(d, sock, "[actions]\nadd_header = %s\nreject = %s\n"
                           "greylist = off\n" % (add_header, reject))
    if env.milter is not None:
        env.milter.stop()
    env.milter = Milter(d, config(1), binary=binary("mxguard-milter"))
    env.milter.start()
    conf_path = env.milter.config_path   # the file the milter reads
    load = Load(env.postfix.port)
    load.run()
    generations = []
    try:
        for i in range(RELOADS):
            time.sleep(0.6)
            write(conf_path, config(100 if i % 2 == 0 else 1))
            _, out = reload_milter(pidfile, conf_path)
            generations.append(out["generation"])
        time.sleep(0.6)
    finally:
        load.stop()
    assert generations == list(range(2, 2 + RELOADS)), generations
    assert not load.errors, "lost connections: %s" % load.errors[:5]
    codes = [c for c, _, _ in load.replies]
    assert len(codes) >= 50, "only %d messages in the run" % len(codes)
    bad = [(c, m, t) for c, m, t in load.replies if c != 250]
    assert not bad, "replies other than 250 during reloads: %s" % bad[:5]
    # Every accepted message was delivered, with one of the two outcomes.
    ids = {t for _, _, t in load.replies}
    got = wait_for(lambda: (lambda m: m if len(m) >= len(ids) else None)(
        [m for m in env.sink.messages()
         if any(v.startswith("load-") for v in m.header("X-Test-Id"))]), 30)
    assert got, "delivered %d of %d" % (len([m for m in env.sink.messages()]), len(ids))
    flags = {(m.header("X-Spam-Flag") or ["-"])[0] for m in got}
    assert flags == {"YES", "-"}, "both thresholds should have been seen: %s" % flags

    # The last config rejects the marker: messages after it see that.
    write(conf_path, config(1, reject=3))
    reload_milter(pidfile, conf_path)
    after = Load(env.postfix.port)
    for n in range(3):
        after.one(n)
    assert [c for c, _, _ in after.replies] == [550] * 3, after.replies
    assert "rejected as spam" in after.replies[0][1], after.replies[0]


@case
def test_broken_config_on_reload_keeps_the_old_one(env):
    if env.postfix is None:
        env.start_mta()
    m = env.milter
    assert m is not None and m.running(), "needs the reload test's milter"
    pidfile = os.path.join(env.workdir, "reload-milter.pid")
    good = read(m.config_path)
    broken = good + "\n[actions]\nreject = lots\n"
    write(m.config_path, broken)
    lines = broken.count("\n")
    rc, out = reload_milter(pidfile, m.config_path, expect_ok=False)
    assert rc == 1 and out["outcome"] == "refused", out
    assert ("%s:%d:" % (m.config_path, lines)) in out["error"], out
    assert "reject" in out["error"]
    log = read(m.log_path)
    assert "reload refused" in log and ":%d:" % lines in log, log[-2000:]
    # Still serving, with the old threshold (reject = 3: the marker is 5).
    load = Load(env.postfix.port)
    load.one(1)
    assert [c for c, _, _ in load.replies] == [550], load.replies
    write(m.config_path, good)


@case
def test_policy_server_reloads_on_sighup(env):
    d = tempfile.mkdtemp(dir=env.workdir)
    port = free_port()
    pidfile = os.path.join(d, "policy.pid")
    def config(received_spf, max_connections=256):
        return ("[milter]\nuser = root\n[dns]\nnameserver = 127.0.0.1@9\ntimeout = 300ms\n"
                "on_error = accept\n[spf]\nreceived_spf = %s\n[dkim]\nenabled = no\n"
                "[dmarc]\nenabled = no\n[rules]\nenabled = no\n[greylist]\nenabled = no\n"
                "[policy]\nlisten = inet:%d@127.0.0.1\npidfile = %s\nmax_connections = %d\n"
                % (received_spf, port, pidfile, max_connections))
    conf = write(os.path.join(d, "p.conf"), config("no"))
    log = os.path.join(d, "policy.log")
    p = start_daemon("mxguard-policy", conf, log)
    def ask(instance):
        c = socket.create_connection(("127.0.0.1", port), 10)
        c.sendall(("request=smtpd_access_policy\nprotocol_state=RCPT\n"
                   "client_address=192.0.2.1\nhelo_name=h.example\ninstance=%s\n"
                   "sender=a@example.org\nrecipient=b@example.net\n\n" % instance).encode())
        got = c.recv(4096).decode()
        c.close()
        return got
    try:
        assert wait_for(lambda: port_accepts(port), 10), read(log)
        assert ask("i1") == "action=DUNNO\n\n"
        # max_connections only changes at restart: the reload says so.
        write(conf, config("yes", max_connections=10))
        before = read(log).count("reloaded")
        p.send_signal(signal.SIGHUP)
        assert wait_for(lambda: read(log).count("reloaded") > before, 20), read(log)
        got = ask("i2")
        assert got.startswith("action=PREPEND Received-SPF: "), got
        assert "[policy] max_connections differs in the file; takes effect at restart" \
            in read(log), read(log)[-1500:]
        # A broken file: refused, old config (received_spf = yes) stays.
        write(conf, config("maybe"))
        rc = subprocess.run([binary("mxguard"), "reload", "--policy", "--pidfile", pidfile],
                            capture_output=True, text=True, timeout=60)
        assert rc.returncode == 1 and "p.conf:" in rc.stderr, (rc.returncode, rc.stderr)
        assert ask("i3").startswith("action=PREPEND Received-SPF: ")
    finally:
        assert stop(p) == 0, read(log)


@case
def test_systemd_notify_ready_and_reloading(env):
    d = tempfile.mkdtemp(dir=env.workdir)
    path = os.path.join(d, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(20)
    port = free_port()
    conf = write(os.path.join(d, "m.conf"),
                 base_config(d, "socket = inet:%d@127.0.0.1\nuser = root" % port))
    environ = dict(os.environ, NOTIFY_SOCKET=path)
    log = os.path.join(d, "milter.log")
    p = start_daemon("mxguard-milter", conf, log, env=environ)
    try:
        got = s.recv(4096).decode()
        assert "READY=1" in got, got
        assert port_accepts(port), "READY before the socket listens"
        p.send_signal(signal.SIGUSR1)
        states = []
        while not any("READY=1" in x for x in states):
            states.append(s.recv(4096).decode())
        assert "RELOADING=1" in states[0], states
    finally:
        s.close()
        assert stop(p) == 0, read(log)


@case
def test_mxguard_reload_bad_input_says_why(env):
    d = tempfile.mkdtemp(dir=env.workdir)
    conf = write(os.path.join(d, "m.conf"), "[milter]\nuser = root\n")
    def run(*args):
        return subprocess.run([binary("mxguard"), "reload"] + list(args),
                              capture_output=True, text=True, timeout=30)
    # No pid file configured.
    p = run("-c", conf)
    assert p.returncode == 1 and "no pid file configured" in p.stderr, (p.returncode, p.stderr)
    # A pid file that does not exist, one with junk in it.
    p = run("--pidfile", os.path.join(d, "none.pid"))
    assert p.returncode == 1 and "no running daemon" in p.stderr, (p.returncode, p.stderr)
    junk = write(os.path.join(d, "junk.pid"), "not a pid\n")
    p = run("--pidfile", junk, "--json")
    out = json.loads(p.stdout)
    assert p.returncode == 1 and out["outcome"] == "error" and "no pid in it" in out["error"], out
    # A broken config: reported with file:line, not a crash.
    bad = write(os.path.join(d, "bad.conf"), "[milter]\nsocket_mode = 999\n")
    p = run("-c", bad)
    assert p.returncode == 1 and "bad.conf:2:" in p.stderr, p.stderr
    # Usage errors.
    for args in (["--timeout", "0"], ["--timeout", "x"], ["extra"], ["--bogus"]):
        p = run(*args)
        assert p.returncode == 2 and "usage: mxguard reload" in p.stderr, (args, p.stderr)


# ---------------------------------------------------------------- logs

@case
def test_json_log_lines_parse_with_the_documented_fields(env):
    if env.postfix is None:
        env.start_mta()
    d = tempfile.mkdtemp(dir=env.workdir)
    text = base_config(d, "socket = inet:%d@127.0.0.1\nuser = root" % env.milter_port,
                       "[log]\nformat = json\n")
    if env.milter is not None:
        env.milter.stop()
    env.milter = Milter(d, text, binary=binary("mxguard-milter"))
    env.milter.start()
    Load(env.postfix.port).one(3)
    assert wait_for(lambda: '"action"' in read(env.milter.log_path), 10), read(env.milter.log_path)
    records = []
    for line in read(env.milter.log_path).splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError("not JSON: %r" % line)
    summary = [r for r in records if "action" in r]
    assert len(summary) == 1, records
    r = summary[0]
    for field in ("time", "level", "program", "queue_id", "client", "helo", "from",
                  "rcpts", "spf", "dkim", "score", "action", "symbols", "ms"):
        assert field in r, (field, r)
    assert r["program"] == "mxguard-milter" and r["level"] == "info", r
    assert r["client"] == "192.0.2.13" and r["from"] == "sender@example.org", r
    assert r["score"] == 5.0 and r["rcpts"] == 1 and isinstance(r["ms"], int), r
    assert "MXG_OPS_MARKER" in r["symbols"], r
    assert all("message" in x for x in records if "action" not in x)


# ---------------------------------------------------------------- install

@case
def test_make_install_layout_and_units_verify(env):
    d = tempfile.mkdtemp(dir=env.workdir)
    prefix = os.path.join(d, "usr")
    etc = os.path.join(d, "etc")
    argv = ["make", "-s", "-C", ROOT, "install", "BUILD=%s" % BUILD,
            "PREFIX=%s" % prefix, "sysconfdir=%s" % etc]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    for rel in ("sbin/mxguard-milter", "sbin/mxguard-policy", "bin/mxguard"):
        assert os.access(os.path.join(prefix, rel), os.X_OK), rel
    conf = os.path.join(etc, "mxguard", "mxguard.conf")
    assert "files = %s/share/mxguard/rules/*.rules" % prefix in read(conf)
    assert os.listdir(os.path.join(prefix, "share", "mxguard", "rules"))
    lint = subprocess.run([os.path.join(prefix, "bin", "mxguard"), "lint", "-c", conf],
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # Never overwritten.
    write(conf, read(conf) + "\n# site edit\n")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and read(conf).endswith("# site edit\n")
    units = os.path.join(prefix, "lib", "systemd", "system")
    for unit in ("mxguard-milter.service", "mxguard-policy.service"):
        text = read(os.path.join(units, unit))
        assert "@" not in re.sub(r"#.*", "", text), "unfilled placeholder in " + unit
        assert "ExecStart=%s/sbin/" % prefix in text
        v = subprocess.run(["systemd-analyze", "verify", os.path.join(units, unit)],
                           capture_output=True, text=True, timeout=60)
        # verify may warn about the host's own units; ours must be clean.
        ours = [l for l in (v.stdout + v.stderr).splitlines() if "mxguard" in l]
        assert v.returncode == 0 and not ours, (v.returncode, v.stdout, v.stderr)
    assert os.path.exists(os.path.join(prefix, "lib", "sysusers.d", "mxguard.conf"))


# ---------------------------------------------------------------- main

def main(argv):
    global BUILD
    pattern, BUILD, _ = parse_args(argv)
    return run_suite(Env(), selected(TESTS, pattern), log_check=(
        "operations_logs_have_no_sanitizer_reports", ("",)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
