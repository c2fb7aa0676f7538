#!/usr/bin/python3
"""Integration tests: mxguard-policy, the Postfix policy-delegation server.

USAGE
    /usr/bin/python3 tests/integration/policy.py [--build DIR] [-k SUBSTRING] [--keep]

    One environment per run: unbound serving the SPF test zones
    (tests/harness/dnsserver.py), Redis, smtp-sink, a private Postfix whose
    smtpd_recipient_restrictions end in check_policy_service (no milter), and
    three mxguard-policy servers with their own configs:

      main      greylisting (delay 2s, on_error accept), SPF reject_fail and
                received_spf; postmaster@ skips greylisting so that the SPF
                rows are not deferred
      strict    the same with greylisting on_error tempfail, idle_timeout 1s,
                max_connections 3
      guarded   allow = 192.0.2.0/24 only, so that 127.0.0.1 is refused

    Rows talk to the servers over raw sockets (the SMTPD_POLICY_README
    protocol), through Postfix with swaks + XCLIENT (the client must not be
    loopback: loopback clients are trusted and skip every check), and with
    Redis stopped and started again.  Every bad-input row then proves that
    another client is still served.  At the end each server gets SIGTERM and
    must exit 0, remove its pidfile, and leave no sanitizer report in its log
    (for --build build-asan with ASAN_OPTIONS=detect_leaks=1).

    Each row prints "ok - NAME" or "not ok - NAME: REASON" ("#" lines after
    it); the last line is "N passed, M failed".  Exit status 1 on a failure.

    --build DIR    use DIR/mxguard-policy (default build)
    -k SUBSTRING   run only the rows whose name contains SUBSTRING
    --keep         keep the work directory (kept anyway after a failure)
"""

import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

from testrun import (clear_sink, indent, parse_args, run_suite,  # noqa: E402
                     selected, stop_each, TestFailure)
from mta import (HarnessError, daemon_config, Postfix, Redis, SmtpSink, free_port,  # noqa: E402
                 port_accepts, swaks, tail, wait_for)

AUTHSERV_ID = "mx.test.local"
GREYLIST_DELAY = 2

RECORDS = [
    ("pass.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
    ("fail.test", "TXT", "v=spf1 ip4:198.51.100.1 -all"),
    # every query refused: SPF temperror, [dns] on_error = tempfail
    ("temperror.test", "TIMEOUT", None),
]

ACTION = re.compile(rb"\Aaction=([^\n]*)\n\n\Z")


def fail(reason, server=None, extra=None):
    parts = [reason]
    if extra:
        parts.append(extra)
    if server is not None:
        parts.append("%s log (%s):\n%s" % (server.name, server.log_path,
                                           _indent(tail(server.log_path, 25))))
    raise TestFailure("\n".join(parts))


def _indent(text, limit=60):
    return indent(text, limit)


# ---------------------------------------------------------------- servers

def policy_config(port, nameserver, redis_port, workdir, name, **over):
    values = dict(allow="127.0.0.0/8 ::1", idle_timeout="10s",
                  max_connections="256", on_error="accept",
                  log_level="info")
    values.update(over)
    return """\
[milter]
authserv_id = {authserv_id}
log_level = {log_level}

[dns]
nameserver = {nameserver}
timeout = 2s
on_error = tempfail

[spf]
reject_fail = yes
received_spf = yes

[redis]
server = 127.0.0.1:{redis_port}
connect_timeout = 500ms
command_timeout = 500ms

[greylist]
enabled = yes
delay = {delay}s
auto_whitelist = 0
skip_recipients = postmaster@
on_error = {on_error}

[policy]
listen = inet:{port}@127.0.0.1
allow = {allow}
pidfile = {workdir}/{name}.pid
idle_timeout = {idle_timeout}
max_connections = {max_connections}
""".format(authserv_id=AUTHSERV_ID, nameserver=nameserver,
           redis_port=redis_port, delay=GREYLIST_DELAY, port=port,
           workdir=workdir, name=name, **values)


class PolicyServer:
    """mxguard-policy -f -c FILE, its output in <workdir>/policy-NAME.log."""

    def __init__(self, workdir, name, config_text, binary, port):
        self.name = name
        self.binary = binary
        self.port = port
        self.config_text = config_text
        self.config_path = os.path.join(workdir, "policy-%s.conf" % name)
        self.log_path = os.path.join(workdir, "policy-%s.log" % name)
        self.pidfile = os.path.join(workdir, "%s.pid" % name)
        self.proc = None
        self.returncode = None

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise HarnessError("%s is not built" % self.binary)
        with open(self.config_path, "w") as f:
            f.write(daemon_config(self.config_text))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-f", "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        up = wait_for(lambda: self.proc.poll() is not None
                      or "listening on" in self.log(), 10)
        if self.proc.poll() is not None or not up:
            self.kill()
            raise HarnessError("mxguard-policy %s did not start:\n%s"
                               % (self.name, tail(self.log_path)))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self, timeout=10):
        """SIGTERM; the exit status (None if it had to be killed)."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


# ---------------------------------------------------------------- clients

_instance = [0]


def next_instance():
    _instance[0] += 1
    return "%x.%x.%x.0" % (os.getpid(), int(time.time()), _instance[0])


def request(state="RCPT", client="192.0.2.10", sender="alice@pass.test",
            rcpt="postmaster@dest.example", helo="mail.pass.test",
            instance=None, queue_id="", **extra):
    """One policy request as Postfix 3.7 sends it, as bytes."""
    attrs = [("request", "smtpd_access_policy"), ("protocol_state", state),
             ("protocol_name", "ESMTP"), ("client_address", client),
             ("client_name", "unknown"), ("client_port", "40000"),
             ("reverse_client_name", "unknown"), ("server_address", "127.0.0.1"),
             ("server_port", "25"), ("helo_name", helo), ("sender", sender),
             ("recipient", rcpt if state == "RCPT" else ""),
             ("recipient_count", "0"), ("queue_id", queue_id),
             ("instance", instance or next_instance()), ("size", "0"),
             ("etrn_domain", ""), ("stress", ""), ("sasl_method", ""),
             ("sasl_username", ""), ("sasl_sender", ""), ("ccert_subject", ""),
             ("encryption_protocol", ""), ("policy_context", "")]
    attrs += list(extra.items())
    return "".join("%s=%s\n" % kv for kv in attrs).encode() + b"\n"


class Client:
    """A raw connection to a policy server."""

    def __init__(self, server, timeout=10):
        self.server = server
        self.sock = socket.create_connection(("127.0.0.1", server.port),
                                             timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self, timeout=10):
        """The next reply's action text, or None when the server closed."""
        self.sock.settimeout(timeout)
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                if self.buf:
                    fail("connection closed after a partial reply %r"
                         % self.buf[:200], self.server)
                return None
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n\n", 1)
        m = ACTION.match(raw + b"\n\n")
        if not m:
            fail("malformed reply %r" % raw[:300], self.server)
        return m.group(1).decode("latin-1")

    def ask(self, data, timeout=10):
        self.send(data)
        got = self.reply(timeout)
        if got is None:
            fail("the server closed the connection instead of answering",
                 self.server)
        return got

    def closed_by_server(self, timeout):
        """True when the server closes within timeout without sending."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if data:
            fail("expected a close, got %r" % data[:200], self.server)
        return True

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def redis_call(port, *args, timeout=2.0):
    """One Redis command over RESP; the parsed reply (bytes, int, list)."""
    req = b"*%d\r\n" % len(args)
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        req += b"$%d\r\n%s\r\n" % (len(b), b)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        f = s.makefile("rb")

        def parse():
            line = f.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:]
            if kind == b"+":
                return rest
            if kind == b"-":
                return Exception(rest.decode())
            if kind == b":":
                return int(rest)
            if kind == b"$":
                n = int(rest)
                if n < 0:
                    return None
                data = f.read(n + 2)
                return data[:-2]
            if kind == b"*":
                n = int(rest)
                return None if n < 0 else [parse() for _ in range(n)]
            raise ValueError("bad RESP line %r" % line)
        return parse()


def expect_served(server, client="192.0.2.11"):
    """Another client gets a real, engine-made answer."""
    with Client(server) as c:
        got = c.ask(request(client=client, sender="other@pass.test"))
    if not got.startswith("PREPEND Received-SPF: pass "):
        fail("a second client expected PREPEND Received-SPF: pass, got %r" % got,
             server)
    if not server.running():
        fail("the server is not running", server)


# ---------------------------------------------------------------- environment

class Env:
    def __init__(self, build, keep=False):
        self.binary = os.path.join(ROOT, build, "mxguard-policy")
        self.keep = keep
        self.workdir = None
        self.dns = self.redis = self.sink = self.postfix = None
        self.servers = {}

    def start(self):
        from dnsserver import DnsServer
        self.workdir = tempfile.mkdtemp(prefix="mxguard-policy-")
        os.chmod(self.workdir, 0o755)
        # TTL 0: the resolver keeps no answer, so a test can tell an SPF
        # result the server reused from one it asked DNS for again.
        self.dns = DnsServer(os.path.join(self.workdir, "dns"), ttl=0)
        self.dns.set_records(RECORDS)
        self.dns.start()
        self.redis = Redis(self.workdir).start()
        for name, over in (("main", {}),
                           ("strict", dict(on_error="tempfail",
                                           idle_timeout="1s",
                                           max_connections="3")),
                           ("guarded", dict(allow="192.0.2.0/24"))):
            self.start_server(name, **over)
        self.sink = SmtpSink(self.workdir).start()
        rr = ("permit_mynetworks, reject_unauth_destination, "
              "check_policy_service inet:127.0.0.1:%d" % self.servers["main"].port)
        self.postfix = Postfix(self.workdir, None, self.sink.port, sink=self.sink,
                               extra_main_cf={"smtpd_recipient_restrictions": rr})
        self.postfix.start()
        return self

    def start_server(self, name, **over):
        port = free_port()
        text = policy_config(port, self.dns.address, self.redis.port,
                             self.workdir, name, **over)
        server = PolicyServer(self.workdir, name, text, self.binary, port)
        self.servers[name] = server
        return server.start()

    def stop(self):
        errors = stop_each((name, getattr(self, name)) for name in
                           ("postfix", "sink", "redis", "dns"))
        for s in self.servers.values():
            s.kill()
        return errors


# ---------------------------------------------------------------- rows: protocol

def test_a_full_request_gets_one_well_formed_reply(env):
    main = env.servers["main"]
    with Client(main) as c:
        got = c.ask(request())
        if not got.startswith("PREPEND Received-SPF: pass "):
            fail("expected PREPEND Received-SPF: pass, got %r" % got, main)
        c.sock.settimeout(0.3)
        try:
            extra = c.sock.recv(100)
        except socket.timeout:
            extra = b""
        if extra:
            fail("bytes after the reply: %r" % extra, main)


def test_several_requests_on_one_connection_each_get_their_reply(env):
    main = env.servers["main"]
    with Client(main) as c:
        # three at once, before reading any answer, then two in turn
        c.send(request(state="CONNECT") + request(state="DATA") +
               request(sender="p1@pass.test"))
        got = [c.reply(), c.reply(), c.reply()]
        got += [c.ask(request(state="END-OF-MESSAGE")),
                c.ask(request(sender="mallory@fail.test"))]
    if got[0] != "DUNNO" or got[1] != "DUNNO" or got[3] != "DUNNO" \
            or not got[2].startswith("PREPEND Received-SPF: pass ") \
            or not got[4].startswith("550 5.7.23 "):
        fail("unexpected answers %r" % got, main)


def test_other_protocol_states_get_dunno(env):
    main = env.servers["main"]
    with Client(main) as c:
        for state in ("CONNECT", "EHLO", "HELO", "MAIL", "DATA",
                      "END-OF-MESSAGE", "VRFY", "ETRN"):
            got = c.ask(request(state=state, sender="mallory@fail.test"))
            if got != "DUNNO":
                fail("protocol_state=%s: expected DUNNO, got %r" % (state, got),
                     main)


def test_greylisting_defers_a_new_triplet_then_passes_it_after_the_delay(env):
    main = env.servers["main"]
    sender, rcpt = "grey1@pass.test", "rcpt@dest.example"
    key = "mxg:gl:t:192.0.2.0/24|%s|%s" % (sender, rcpt)
    with Client(main) as c:
        first = c.ask(request(client="192.0.2.20", sender=sender, rcpt=rcpt))
        started = time.monotonic()
        m = re.match(r"DEFER_IF_PERMIT 4\.7\.1 Greylisted, try again in (\d+) "
                     r"seconds\Z", first)
        if not m or not 0 < int(m.group(1)) <= GREYLIST_DELAY:
            fail("first attempt: expected DEFER_IF_PERMIT 4.7.1 Greylisted, "
                 "try again in 1..%d seconds, got %r" % (GREYLIST_DELAY, first),
                 main)
        again = c.ask(request(client="192.0.2.21", sender=sender, rcpt=rcpt))
        m = re.match(r"DEFER_IF_PERMIT 4\.7\.1 Greylisted, try again in (\d+) "
                     r"seconds\Z", again)
        if not m or int(m.group(1)) > GREYLIST_DELAY:
            fail("retry before the delay: expected DEFER_IF_PERMIT again, got %r"
                 % again, main)
        time.sleep(max(0, GREYLIST_DELAY + 0.3 - (time.monotonic() - started)))
        after = c.ask(request(client="192.0.2.22", sender=sender, rcpt=rcpt))
        if after != "DUNNO" and not after.startswith("PREPEND Received-SPF: pass "):
            fail("after the delay: expected DUNNO or PREPEND, got %r" % after,
                 main)
    state = redis_call(env.redis.port, "HGET", key, "state")
    if state != b"pass":
        fail("Redis %s state: expected pass, got %r (keys: %r)"
             % (key, state, redis_call(env.redis.port, "KEYS", "mxg:*")), main)


def test_greylisting_keys_on_the_recipient_and_decides_per_request(env):
    main = env.servers["main"]
    with Client(main) as c:
        a = c.ask(request(client="192.0.2.23", sender="grey2@pass.test",
                          rcpt="one@dest.example"))
        b = c.ask(request(client="192.0.2.23", sender="grey2@pass.test",
                          rcpt="postmaster@dest.example"))
    if not a.startswith("DEFER_IF_PERMIT 4.7.1 ") or \
            not b.startswith("PREPEND Received-SPF: pass "):
        fail("expected a deferred recipient then a skipped one, got %r, %r"
             % (a, b), main)


def test_spf_fail_is_refused_with_550_5_7_23(env):
    main = env.servers["main"]
    with Client(main) as c:
        got = c.ask(request(sender="mallory@fail.test", helo="mail.fail.test"))
    if not got.startswith("550 5.7.23 "):
        fail("expected action=550 5.7.23 ..., got %r" % got, main)
    if not re.search(r"NOQUEUE: client=192\.0\.2\.10 .*spf=fail .*"
                     r"rcpt=<postmaster@dest\.example> policy=\"550 5\.7\.23 ",
                     main.log()):
        fail("no log line for the refusal", main)


def test_spf_pass_prepends_received_spf_once_per_message(env):
    main = env.servers["main"]
    inst1, inst2 = next_instance(), next_instance()
    with Client(main) as c:
        got = [c.ask(request(instance=inst1, rcpt="postmaster@a.example",
                             queue_id="4ABCDE")),
               c.ask(request(instance=inst1, rcpt="postmaster@b.example",
                             queue_id="4ABCDE")),
               c.ask(request(instance=inst2, rcpt="postmaster@a.example"))]
    want = (r"PREPEND Received-SPF: pass \(.*\) client-ip=192\.0\.2\.10; "
            r"envelope-from=\"alice@pass\.test\"; helo=\"mail\.pass\.test\"; "
            r"receiver=%s; identity=mailfrom;\Z" % re.escape(AUTHSERV_ID))
    if not re.match(want, got[0]) or got[1] != "DUNNO" or \
            not re.match(want, got[2]):
        fail("expected PREPEND, DUNNO (same instance), PREPEND (new instance), "
             "got %r" % got, main)
    if "4ABCDE: client=192.0.2.10" not in main.log():
        fail("no log line with the queue id 4ABCDE", main)


def test_spf_is_evaluated_once_per_message_not_per_recipient(env):
    # Postfix asks once per recipient; the server keeps the connection's
    # last SPF evaluation. Proof (records have TTL 0, nothing is cached by
    # the resolver): with the DNS server stopped after the first request,
    # the second recipient still gets pass, while a new sender is a DNS
    # failure.
    main = env.servers["main"]
    inst = next_instance()
    with Client(main) as c:
        first = c.ask(request(instance=inst, sender="carol@pass.test",
                              rcpt="postmaster@a.example"))
        env.dns.stop()
        try:
            second = c.ask(request(instance=inst, sender="carol@pass.test",
                                   rcpt="postmaster@b.example"), timeout=15)
            other = c.ask(request(sender="dave@pass.test",
                                  rcpt="postmaster@a.example"), timeout=15)
        finally:
            env.dns.start()
    if not first.startswith("PREPEND Received-SPF: pass"):
        fail("first recipient: expected PREPEND ... pass, got %r" % first, main)
    if second != "DUNNO":
        fail("second recipient of the same message: expected DUNNO (SPF "
             "result reused), got %r" % second, main)
    if not other.startswith("451 4.4.3 "):
        fail("another sender with DNS down: expected 451 4.4.3, got %r"
             % other, main)


def test_dns_trouble_is_451_4_4_3(env):
    main = env.servers["main"]
    with Client(main) as c:
        got = c.ask(request(sender="someone@temperror.test"), timeout=15)
    if not got.startswith("451 4.4.3 "):
        fail("SPF temperror with [dns] on_error = tempfail: expected "
             "action=451 4.4.3 ..., got %r" % got, main)


def test_client_outside_allow_is_closed_without_a_reply(env):
    guarded = env.servers["guarded"]
    with Client(guarded) as c:
        try:
            c.send(request())
        except OSError:
            pass
        if not c.closed_by_server(3):
            fail("127.0.0.1 is not in allow = 192.0.2.0/24 but was not closed",
                 guarded)
    if not wait_for(lambda: re.search(r"client 127\.0\.0\.1:\d+ is not in "
                                      r"\[policy\] allow; closed", guarded.log()), 3):
        fail("no log line for the refused client", guarded)
    if not guarded.running():
        fail("the server stopped", guarded)


def test_sighup_and_sigusr1_do_not_stop_the_server(env):
    main = env.servers["main"]
    with Client(main) as c:
        c.ask(request(state="DATA"))
        main.signal(signal.SIGHUP)
        main.signal(signal.SIGUSR1)
        time.sleep(0.3)
        if not main.running():
            fail("SIGHUP or SIGUSR1 stopped the server", main)
        got = c.ask(request(state="DATA"))
        if got != "DUNNO":
            fail("after SIGHUP the open connection got %r" % got, main)
    expect_served(main)


def test_many_clients_at_once_are_all_served(env):
    main = env.servers["main"]
    results, errors = [], []

    def one(i):
        try:
            with Client(main) as c:
                for k in range(5):
                    results.append(c.ask(request(client="192.0.2.%d" % (100 + i),
                                                 sender="many%d@pass.test" % k)))
        except Exception as e:
            errors.append("%s: %s" % (type(e).__name__, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    bad = [r for r in results if not r.startswith("PREPEND Received-SPF: pass ")]
    if errors or len(results) != 100 or bad:
        fail("20 clients x 5 requests: %d answers, errors %r, unexpected %r"
             % (len(results), errors[:3], bad[:3]), main)


def test_connections_over_max_connections_are_closed(env):
    strict = env.servers["strict"]
    held = [Client(strict) for _ in range(3)]
    try:
        for c in held:
            c.ask(request(state="DATA"))
        with Client(strict) as extra:
            if not extra.closed_by_server(3):
                fail("a 4th connection with max_connections = 3 was not closed",
                     strict)
        for c in held:
            if c.ask(request(state="DATA")) != "DUNNO":
                fail("a held connection stopped being served", strict)
    finally:
        for c in held:
            c.close()
    if "max_connections" not in strict.log():
        fail("no log line for the refused connection", strict)
    wait_for(lambda: False, 0.3)  # let the three threads end
    expect_served(strict)


# ---------------------------------------------------------------- rows: bad input

def test_garbage_bytes_get_dunno_or_a_close_and_others_are_served(env):
    main = env.servers["main"]
    rnd = random.Random(5)
    garbage = bytes(rnd.randrange(256) for _ in range(20000))
    with Client(main) as c:
        c.send(garbage + b"\n\n")
        c.sock.settimeout(5)
        data = b""
        try:
            while True:
                chunk = c.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.endswith(b"\n\n") and len(data) > 0:
                    c.sock.settimeout(0.5)
        except socket.timeout:
            pass
    if data and not re.fullmatch(rb"(action=DUNNO\n\n)+", data):
        fail("garbage got %r" % data[:300], main)
    expect_served(main)


def test_nul_bytes_get_dunno_and_the_connection_stays_in_step(env):
    main = env.servers["main"]
    bad = request(sender="mallory@fail.test").replace(
        b"protocol_state=RCPT", b"protocol_state=RC\0PT")
    with Client(main) as c:
        got = c.ask(bad)
        if got != "DUNNO":
            fail("a request with a NUL byte got %r" % got, main)
        got = c.ask(request(sender="mallory@fail.test"))
        if not got.startswith("550 5.7.23 "):
            fail("the next request on the same connection got %r" % got, main)
    if "bad request: NUL byte" not in main.log():
        fail("no log line for the NUL byte", main)
    expect_served(main)


def test_line_without_equals_gets_dunno_and_the_connection_stays_in_step(env):
    main = env.servers["main"]
    bad = request(sender="mallory@fail.test").replace(
        b"protocol_name=ESMTP\n", b"protocol_name ESMTP\n")
    with Client(main) as c:
        got = c.ask(bad)
        if got != "DUNNO":
            fail("a line without '=' got %r" % got, main)
        if not c.ask(request(sender="mallory@fail.test")).startswith("550 5.7.23 "):
            fail("the next request on the same connection was not judged", main)
    if "bad request: line without '='" not in main.log():
        fail("no log line for the line without '='", main)
    expect_served(main)


def test_a_1mb_line_gets_dunno_and_others_are_served(env):
    main = env.servers["main"]
    bad = request(sender="mallory@fail.test").replace(
        b"helo_name=mail.pass.test", b"helo_name=" + b"h" * (1 << 20))
    with Client(main) as c:
        got = c.ask(bad)
        if got != "DUNNO":
            fail("a 1 MB line got %r" % got, main)
        if not c.ask(request(sender="mallory@fail.test")).startswith("550 5.7.23 "):
            fail("the next request on the same connection was not judged", main)
    if not re.search(r"bad request: (line longer than \[policy\] max_line|"
                     r"request longer than \[policy\] max_request)", main.log()):
        fail("no log line for the 1 MB line", main)
    expect_served(main)


def test_10000_attributes_get_dunno_and_others_are_served(env):
    main = env.servers["main"]
    many = b"".join(b"x%d=%d\n" % (i, i) for i in range(10000))
    bad = request(sender="mallory@fail.test")[:-1] + many + b"\n"
    with Client(main) as c:
        got = c.ask(bad)
        if got != "DUNNO":
            fail("10,000 attributes got %r" % got, main)
        if not c.ask(request(sender="mallory@fail.test")).startswith("550 5.7.23 "):
            fail("the next request on the same connection was not judged", main)
    if not re.search(r"bad request: (more attributes than \[policy\] "
                     r"max_attributes|request longer than)", main.log()):
        fail("no log line for the 10,000 attributes", main)
    expect_served(main)


def test_half_a_request_then_close_leaves_the_server_serving(env):
    main = env.servers["main"]
    whole = request()
    for cut in (1, len(whole) // 2, len(whole) - 1):
        with Client(main) as c:
            c.send(whole[:cut])
            time.sleep(0.05)
    expect_served(main)


def test_a_silent_client_is_closed_after_idle_timeout(env):
    strict = env.servers["strict"]
    with Client(strict) as c:
        started = time.monotonic()
        if not c.closed_by_server(4):
            fail("a silent client was not closed within 4 s (idle_timeout 1s)",
                 strict)
        took = time.monotonic() - started
        if took < 0.8:
            fail("closed after %.2fs, before idle_timeout" % took, strict)
    with Client(strict) as c:
        c.send(request()[:40])
        if not c.closed_by_server(4):
            fail("a client silent in mid-request was not closed", strict)
    expect_served(strict)


def test_a_bad_request_that_never_ends_is_closed(env):
    main = env.servers["main"]
    with Client(main) as c:
        chunk = b"z" * 65536
        try:
            for _ in range(100):     # 6.4 MB without an LF
                c.send(chunk)
        except OSError:
            pass
        if not c.closed_by_server(5):
            fail("6.4 MB of one bad line did not close the connection", main)
    if "still has no end" not in main.log():
        fail("no log line for the endless request", main)
    expect_served(main)


# ---------------------------------------------------------------- rows: Postfix

def _send(env, mail_from, rcpt, client):
    return swaks(env.postfix.port, mail_from, rcpt, helo="mail.pass.test",
                 xclient_addr=client, xclient_name="host.example",
                 headers=["X-Test-Id: %s" % next_instance()], timeout=30)


def _postfix_fail(reason, res, env):
    fail(reason, env.servers["main"],
         extra="swaks transcript:\n%s\npostfix log:\n%s"
         % (_indent(res.transcript, 40), _indent(tail(env.postfix.log_path, 20))))


def _delivered(env, res, timeout=10):
    test_id = [h for h in res.argv if h.startswith("X-Test-Id: ")][0][11:]

    def find():
        for m in env.sink.messages():
            if test_id in m.header("X-Test-Id"):
                return m
        return None
    msg = wait_for(find, timeout, interval=0.1)
    if msg is None:
        _postfix_fail("message not delivered within %ss" % timeout, res, env)
    return msg


def test_postfix_greylists_at_rcpt_then_delivers_with_received_spf(env):
    client = "192.0.2.60"
    first = _send(env, "pf1@pass.test", "rcpt@dest.example", client)
    started = time.monotonic()
    r = first.final
    if r is None or r.stage != "RCPT" or r.code not in (450, 451) \
            or r.enhanced != "4.7.1" or "Greylisted, try again in" not in r.text:
        _postfix_fail("first attempt: expected 450/451 4.7.1 Greylisted at RCPT, "
                      "got %s" % r, first, env)
    time.sleep(max(0, GREYLIST_DELAY + 0.3 - (time.monotonic() - started)))
    second = _send(env, "pf1@pass.test", "rcpt@dest.example", client)
    r = second.final
    if r is None or r.stage != "DOT" or r.code != 250:
        _postfix_fail("after the delay: expected 250 at end of DATA, got %s" % r,
                      second, env)
    msg = _delivered(env, second)
    rspf = msg.header("Received-SPF")
    if len(rspf) != 1 or not rspf[0].startswith("pass ") or \
            "client-ip=%s;" % client not in rspf[0]:
        _postfix_fail("expected one Received-SPF: pass ... client-ip=%s, got %r"
                      % (client, rspf), second, env)


def test_postfix_message_to_two_recipients_gets_one_received_spf(env):
    res = _send(env, "pf2@pass.test",
                ["postmaster@dest.example", "postmaster@other.example"],
                "192.0.2.61")
    if res.final is None or res.final.stage != "DOT" or res.final.code != 250:
        _postfix_fail("expected 250 at end of DATA, got %s" % res.final, res, env)
    msg = _delivered(env, res)
    if len(msg.header("Received-SPF")) != 1:
        _postfix_fail("expected exactly one Received-SPF, got %r"
                      % msg.header("Received-SPF"), res, env)


def test_postfix_spf_fail_is_refused_550_5_7_23_at_rcpt(env):
    res = _send(env, "mallory@fail.test", "postmaster@dest.example", "192.0.2.62")
    r = res.final
    if r is None or r.stage != "RCPT" or r.code != 550 or r.enhanced != "5.7.23":
        _postfix_fail("expected 550 5.7.23 at RCPT, got %s" % r, res, env)


# ---------------------------------------------------------------- rows: Redis

def test_redis_down_gives_on_error_outcome_and_greylisting_resumes(env):
    main, strict = env.servers["main"], env.servers["strict"]
    port = env.redis.port
    env.redis.stop()
    with Client(main) as c:
        got = c.ask(request(client="192.0.2.70", sender="rd1@pass.test",
                            rcpt="rcpt@dest.example"))
    if got != "DUNNO" and not got.startswith("PREPEND Received-SPF: pass "):
        fail("Redis down, on_error = accept: expected DUNNO or PREPEND, got %r"
             % got, main)
    with Client(strict) as c:
        got = c.ask(request(client="192.0.2.70", sender="rd1@pass.test",
                            rcpt="rcpt@dest.example"))
    if not re.match(r"(DEFER_IF_PERMIT 4\.3\.0 |4\d\d 4\.3\.0 )", got):
        fail("Redis down, on_error = tempfail: expected a 4.3.0 deferral, got %r"
             % got, strict)
    if not re.search(r"redis .*failing fast", main.log()):
        fail("no log line for the Redis outage", main)

    env.redis = Redis(env.workdir, port=port).start()
    answers = []

    def resumed():
        with Client(main) as c:
            answers.append(c.ask(request(client="192.0.2.71",
                                         sender="rd%d@pass.test" % len(answers),
                                         rcpt="rcpt@dest.example")))
        return answers[-1].startswith("DEFER_IF_PERMIT 4.7.1 Greylisted")
    if not wait_for(resumed, 8, interval=0.3):
        fail("greylisting did not resume after Redis came back: %r"
             % answers[-5:], main)
    n = len(answers) - 1
    key = "mxg:gl:t:192.0.2.0/24|rd%d@pass.test|rcpt@dest.example" % n
    if redis_call(env.redis.port, "HGET", key, "state") != b"wait":
        fail("the new triplet %s is not in Redis" % key, main)
    with Client(strict) as c:
        got = c.ask(request(client="192.0.2.72", sender="rs1@pass.test",
                            rcpt="rcpt@dest.example"))
    if not got.startswith("DEFER_IF_PERMIT 4.7.1 Greylisted"):
        fail("the on_error = tempfail server did not resume: %r" % got, strict)


# ---------------------------------------------------------------- rows: stop

def test_sigterm_answers_the_request_in_flight_then_exits_0(env):
    server = env.start_server("stopper")
    whole = request(sender="mallory@fail.test")
    with Client(server) as idle, Client(server) as busy:
        idle.ask(request(state="DATA"))
        busy.send(whole[:50])
        time.sleep(0.2)
        server.signal(signal.SIGTERM)
        time.sleep(0.3)
        busy.send(whole[50:])
        got = busy.reply()
        if got is None or not got.startswith("550 5.7.23 "):
            fail("the request in flight got %r" % got, server)
        if not idle.closed_by_server(3):
            fail("an idle connection was not closed at SIGTERM", server)
        if port_accepts(server.port):
            fail("still accepting after SIGTERM", server)
    rc = server.stop()
    if rc != 0:
        fail("exit status %r after SIGTERM" % rc, server)
    if os.path.exists(server.pidfile):
        fail("pidfile %s left behind" % server.pidfile, server)


TESTS = [
    test_a_full_request_gets_one_well_formed_reply,
    test_several_requests_on_one_connection_each_get_their_reply,
    test_other_protocol_states_get_dunno,
    test_greylisting_defers_a_new_triplet_then_passes_it_after_the_delay,
    test_greylisting_keys_on_the_recipient_and_decides_per_request,
    test_spf_fail_is_refused_with_550_5_7_23,
    test_spf_pass_prepends_received_spf_once_per_message,
    test_spf_is_evaluated_once_per_message_not_per_recipient,
    test_dns_trouble_is_451_4_4_3,
    test_client_outside_allow_is_closed_without_a_reply,
    test_sighup_and_sigusr1_do_not_stop_the_server,
    test_many_clients_at_once_are_all_served,
    test_connections_over_max_connections_are_closed,
    test_garbage_bytes_get_dunno_or_a_close_and_others_are_served,
    test_nul_bytes_get_dunno_and_the_connection_stays_in_step,
    test_line_without_equals_gets_dunno_and_the_connection_stays_in_step,
    test_a_1mb_line_gets_dunno_and_others_are_served,
    test_10000_attributes_get_dunno_and_others_are_served,
    test_half_a_request_then_close_leaves_the_server_serving,
    test_a_silent_client_is_closed_after_idle_timeout,
    test_a_bad_request_that_never_ends_is_closed,
    test_postfix_greylists_at_rcpt_then_delivers_with_received_spf,
    test_postfix_message_to_two_recipients_gets_one_received_spf,
    test_postfix_spf_fail_is_refused_550_5_7_23_at_rcpt,
    test_redis_down_gives_on_error_outcome_and_greylisting_resumes,
    test_sigterm_answers_the_request_in_flight_then_exits_0,
]


# ---------------------------------------------------------------- main

def servers_exit_0_on_sigterm_and_remove_their_pidfile(env):
    """Every server must stop cleanly on SIGTERM: exit 0, no pidfile."""
    if not env.servers:
        return None
    problems = []
    for s in env.servers.values():
        if s.proc is None or (s.returncode is not None
                              and not s.running()):
            continue
        rc = s.stop()
        if rc != 0:
            problems.append("%s: exit status %r after SIGTERM" % (s.name, rc))
        elif os.path.exists(s.pidfile):
            problems.append("%s: pidfile left behind" % s.name)
    return problems


def main(argv):
    pattern, build, keep = parse_args(argv)
    return run_suite(
        Env(build, keep=keep), selected(TESTS, pattern), keep,
        before_each=clear_sink,
        stop_checks=[servers_exit_0_on_sigterm_and_remove_their_pidfile],
        log_check=("policy_logs_have_no_sanitizer_reports", ("policy-",)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
