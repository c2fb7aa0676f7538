#!/usr/bin/python3
"""Rate limits through real Postfix, mxguard-policy and mxguard-milter on
one real redis-server, on loopback.

USAGE
    /usr/bin/python3 tests/integration/ratelimit.py [--build DIR]
        [-k SUBSTRING] [--keep]

    One environment per run: redis-server, smtp-sink as the next hop and
    two "MX hosts" on the one Redis:

      mx-a   Postfix with check_policy_service in
             smtpd_recipient_restrictions (messages, recipients) and in
             smtpd_end_of_data_restrictions (bytes), to mxguard-policy
             "pa" (log_level debug)
      mx-b   Postfix with mxguard-milter, no policy service

    plus mxguard-policy "pb" (a second policy host, same rules) and
    "strict" (the same rules, on_error = tempfail) spoken to over raw
    sockets. Every daemon has the same [ratelimit] rules (RULES below),
    with rates small enough that a test takes seconds: 12/1m is one
    message every 5 s. Redis is flushed before each test; each test uses
    its own client network and sender domain.

    Mail is sent with swaks through XCLIENT so that Postfix, the milter
    and the policy server see a client at 10.N.0.M (loopback clients are
    trusted and skip every check).

    Each test prints "ok - NAME" or "not ok - NAME: REASON" ("#" lines
    after it); the last line is "N passed, M failed". At the end every
    policy server must exit 0 on SIGTERM, and no daemon log may hold a
    sanitizer report (the ASan build: --build build-asan).

    --build DIR    use DIR/mxguard-milter, -policy and mxguard (default build)
    -k SUBSTRING   run only the tests whose name contains SUBSTRING
    --keep         keep the work directory (it is kept anyway after a failure)
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

BUILD = sys.argv[sys.argv.index("--build") + 1] if "--build" in sys.argv \
    else "build"
# The milter's binary must be known before the harness is imported.
os.environ["MXGUARD_MILTER"] = os.path.join(ROOT, BUILD, "mxguard-milter")

from testrun import (clear_sink_and_redis, disabled, indent,  # noqa: E402
                     parse_args, run_suite, selected, stop_each, TestFailure)
from mta import (Milter, Postfix, Redis, SmtpSink, free_port,  # noqa: E402
                 swaks, tail, wait_for)
from policy import Client, PolicyServer, next_instance, request  # noqa: E402

CLI = os.path.join(ROOT, BUILD, "mxguard")
T_MESSAGES = 5          # seconds per message of a 12/1m rule

# name, key, rate, burst, count, action, and any more lines
RULE_ROWS = [
    ("per-client", "client_ip", "12/1m", 3, "messages", "defer", ""),
    ("per-sender", "sender", "12/1m", 4, "messages", "defer", ""),
    ("per-domain", "rcpt_domain", "50/1h", 50, "recipients", "defer", ""),
    ("per-user", "sasl_user", "12/1m", 2, "recipients", "reject", ""),
    ("bytes", "client_ip", "600K/1m", "12K", "bytes", "defer", ""),
    ("conn", "client_net", "12/1m", 8, "connections", "defer", ""),
    ("noisy", "sender_domain", "12/1m", 5, "messages", "score",
     "score = 3.5\n"),
]

RULES = """\
[ratelimit]
on_error = {on_error}
skip_networks = 10.250.0.0/24
skip_recipients = postmaster@
""" + "".join("""
[ratelimit %s]
key = %s
rate = %s
burst = %s
count = %s
action = %s
%s""" % row for row in RULE_ROWS)

COMMON = """\
[dns]
nameserver = 127.0.0.1@9
timeout = 300ms
on_error = accept

""" + disabled("spf", "dkim", "dmarc", "rules") + """
[redis]
server = 127.0.0.1:{redis_port}
connect_timeout = 500ms
command_timeout = 1s
"""


def policy_config(port, redis_port, workdir, name, log_level="info",
                  on_error="accept"):
    return ("""\
[milter]
authserv_id = mx.test.local
log_level = {log_level}

[policy]
listen = inet:{port}@127.0.0.1
allow = 127.0.0.0/8
pidfile = {workdir}/{name}.pid
idle_timeout = 30s

""" + COMMON + "\n" + RULES).format(
        port=port, redis_port=redis_port, workdir=workdir, name=name,
        log_level=log_level, on_error=on_error)


def milter_config(port, redis_port):
    return ("""\
[milter]
socket = inet:{port}@127.0.0.1
authserv_id = mx.test.local
log_level = info

""" + COMMON + "\n" + RULES).format(port=port, redis_port=redis_port,
                                     on_error="accept")


# ---------------------------------------------------------------- environment

class Env:
    def __init__(self, keep=False):
        self.keep = keep
        self.workdir = None
        self.redis = self.sink = None
        self.pa = self.pb = self.strict = None
        self.mx_a = self.mx_b = self.milter = None
        self.policy_binary = os.path.join(ROOT, BUILD, "mxguard-policy")
        self._seq = 0

    def start(self):
        self.workdir = tempfile.mkdtemp(prefix="mxguard-rl-")
        os.chmod(self.workdir, 0o755)
        self.redis = Redis(self.workdir).start()
        self.sink = SmtpSink(self.workdir).start()
        self.pa = self.start_policy("pa", log_level="debug")
        self.pb = self.start_policy("pb")
        self.strict = self.start_policy("strict", on_error="tempfail")
        policy = "check_policy_service inet:127.0.0.1:%d" % self.pa.port
        self.mx_a = Postfix(os.path.join(self.workdir, "mx-a"), None,
                            self.sink.port, sink=self.sink, extra_main_cf={
                                "smtpd_recipient_restrictions":
                                    "permit_mynetworks, "
                                    "reject_unauth_destination, " + policy,
                                "smtpd_end_of_data_restrictions": policy,
                            }).start()
        milter_port = free_port()
        self.milter = Milter(self.workdir, milter_config(milter_port,
                                                         self.redis.port))
        self.milter.start()
        self.mx_b = Postfix(os.path.join(self.workdir, "mx-b"),
                            self.milter.socket_spec, self.sink.port,
                            sink=self.sink).start()
        return self

    def start_policy(self, name, **over):
        port = free_port()
        text = policy_config(port, self.redis.port, self.workdir, name, **over)
        return PolicyServer(self.workdir, name, text, self.policy_binary,
                            port).start()

    def config_path(self):
        return self.pa.config_path

    def stop(self):
        errors = stop_each((repr(obj), obj) for obj in
                           (self.mx_a, self.mx_b, self.milter, self.sink,
                            self.redis))
        for s in (self.pa, self.pb, self.strict):
            if s is not None:
                s.kill()
        return errors

    def send(self, mx, client, mail_from, rcpt="user@dest.example",
             body=None, extra_args=()):
        """One message through mx's Postfix from client (XCLIENT)."""
        self._seq += 1
        test_id = "rl%d-%d" % (os.getpid(), self._seq)
        res = swaks(mx.port, mail_from, rcpt, helo="mail.example.org",
                    xclient_addr=client, xclient_name="host.example",
                    headers=["X-Test-Id: %s" % test_id], body=body,
                    extra_args=extra_args, timeout=30)
        res.client, res.test_id, res.mx = client, test_id, mx
        return res


def fail(env, reason, res=None, server=None):
    parts = [reason]
    if res is not None:
        parts.append("swaks exit %s, decisive reply: %s (stage %s)\n"
                     "transcript:\n%s" % (res.rc, res.final, res.final.stage
                                          if res.final else "-",
                                          indent(res.transcript)))
        lines = [l for l in res.mx.log().splitlines()
                 if "[%s]" % res.client in l]
        parts.append("postfix log for %s:\n%s" % (res.client,
                                                  indent("\n".join(lines), 15)))
        if res.mx is env.mx_b:
            parts.append("milter log:\n%s" % indent(env.milter.log(), 20))
    if server is None and res is not None and res.mx is env.mx_a:
        server = env.pa
    if server is not None:
        parts.append("%s log:\n%s" % (server.name,
                                      indent(tail(server.log_path, 25))))
    raise TestFailure("\n".join(parts))


LIMITED = re.compile(r"Rate limit exceeded for (.+), try again in (\d+) "
                     r"seconds$")


def expect_accepted(env, res):
    r = res.final
    if r is None or r.stage != "DOT" or r.code != 250:
        fail(env, "expected 250 at end of DATA, got %s" % r, res=res)


def expect_limited(env, res, stage, what):
    """450 4.7.1 Rate limit exceeded for WHAT, try again in N seconds at
    stage; returns N."""
    r = res.final
    m = LIMITED.search(r.text) if r is not None else None
    if r is None or r.stage != stage or r.code != 450 or \
            r.enhanced != "4.7.1" or not m or m.group(1) != what:
        fail(env, "expected 450 4.7.1 Rate limit exceeded for %s, try again "
             "in N seconds at %s, got %s" % (what, stage, r), res=res)
    return int(m.group(2))


def cli(env, *args):
    p = subprocess.run([CLI, "ratelimit"] + list(args) +
                       ["-c", env.config_path()], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def bucket(env, rule, value):
    rc, out, err = cli(env, "show", rule, value, "--json")
    if rc != 0:
        fail(env, "mxguard ratelimit show %s %s: exit %d: %s" % (rule, value,
                                                                 rc, err))
    return json.loads(out)


def ask(server, **attrs):
    """One request on a new connection; the recipient is not postmaster@
    (which skip_recipients exempts) unless given."""
    attrs.setdefault("rcpt", "u@dest.example")
    with Client(server) as c:
        return c.ask(request(**attrs))


# ---------------------------------------------------------------- tests: policy

def test_policy_burst_is_accepted_then_450_with_the_seconds_left_then_one_more(env):
    client = "10.1.0.1"
    started = time.monotonic()
    for i in range(3):
        expect_accepted(env, env.send(env.mx_a, client, "s%d@one.example" % i))
    res = env.send(env.mx_a, client, "s3@one.example")
    n = expect_limited(env, res, "RCPT", "client %s" % client)
    elapsed = time.monotonic() - started
    if not 1 <= n <= T_MESSAGES or n < T_MESSAGES - elapsed - 1:
        fail(env, "after %.1fs of a 5 s interval, want about %.0f seconds "
             "left, got %d" % (elapsed, T_MESSAGES - elapsed, n), res=res)
    if "450 4.7.1 " not in res.final.lines[-1]:
        fail(env, "the client must see the 450 itself", res=res)
    # a second client address is untouched
    expect_accepted(env, env.send(env.mx_a, "10.1.0.2", "other@one.example"))
    time.sleep(n + 0.2)
    expect_accepted(env, env.send(env.mx_a, client, "s4@one.example"))
    # one, not two
    expect_limited(env, env.send(env.mx_a, client, "s5@one.example"), "RCPT",
                   "client %s" % client)


def test_policy_sender_rule_limits_one_sender_across_many_client_ips(env):
    sender = "bulk@two.example"
    for i in range(4):
        expect_accepted(env, env.send(env.mx_a, "10.2.0.%d" % (i + 1), sender))
    res = env.send(env.mx_a, "10.2.0.99", sender)
    expect_limited(env, res, "RCPT", "sender %s" % sender)
    # the refused message charged nothing: that client can still send
    expect_accepted(env, env.send(env.mx_a, "10.2.0.99", "else@two.example"))


def test_policy_deferred_recipient_consumes_no_budget(env):
    client = "10.3.0.1"
    for i in range(3):
        expect_accepted(env, env.send(env.mx_a, client, "s%d@three.example" % i))
    for i in range(5):
        expect_limited(env, env.send(env.mx_a, client, "x@three.example"),
                       "RCPT", "client %s" % client)
    b = bucket(env, "per-client", client)
    if not 2.5 < b["level"] <= 3.0:
        fail(env, "5 deferred messages must not charge the bucket: level %r"
             % b["level"])
    b = bucket(env, "per-sender", "x@three.example")
    if b["exists"]:
        fail(env, "a refused request charged another rule's bucket: %r" % b)


def test_policy_sasl_user_rule_rejects_550_per_recipient(env):
    res = env.send(env.mx_a, "10.4.0.1", "u@four.example",
                   rcpt=["a@dest.example", "b@dest.example", "c@dest.example"],
                   extra_args=["--xclient-login", "bob"])
    codes = [(r.code, r.enhanced) for r in res.replies if r.stage == "RCPT"]
    if codes != [(250, "2.1.5"), (250, "2.1.5"), (550, "5.7.1")]:
        fail(env, "want RCPT 250, 250, 550 5.7.1, got %s" % codes, res=res)
    third = [r for r in res.replies if r.stage == "RCPT"][2]
    if "Rate limit exceeded for SASL user bob" not in third.text:
        fail(env, "550 without the rule's words: %s" % third, res=res)
    if not any(r.stage == "DOT" and r.code == 250 for r in res.replies):
        fail(env, "the two accepted recipients got no message", res=res)


def test_policy_bytes_are_limited_at_end_of_message_with_the_size(env):
    client = "10.5.0.1"
    body = "x" * 8000
    expect_accepted(env, env.send(env.mx_a, client, "a@five.example",
                                  body=body))
    res = env.send(env.mx_a, client, "b@five.example", body=body)
    n = expect_limited(env, res, "DOT", "client %s" % client)
    if n != 1:
        fail(env, "8 KB over a 12 KB burst at 10 KB/s: want 1 second, got %d"
             % n, res=res)
    # a small message still fits
    expect_accepted(env, env.send(env.mx_a, client, "c@five.example",
                                  body="small"))


def test_policy_skip_lists_exempt_networks_and_postmaster(env):
    for i in range(6):
        expect_accepted(env, env.send(env.mx_a, "10.250.0.7",
                                      "s%d@six.example" % i))
    client = "10.6.0.1"
    for i in range(3):
        expect_accepted(env, env.send(env.mx_a, client, "t%d@six.example" % i))
    expect_limited(env, env.send(env.mx_a, client, "t3@six.example"), "RCPT",
                   "client %s" % client)
    expect_accepted(env, env.send(env.mx_a, client, "t4@six.example",
                                  rcpt="postmaster@dest.example"))


def test_policy_connect_counts_connections_and_rcpt_requests_do_not(env):
    # RCPT requests run the CONNECT stage again but never count
    for i in range(12):
        got = ask(env.pa, client="10.7.0.%d" % (i + 1),
                  sender="r%d@seven.example" % i, rcpt="u@dest.example")
        if got != "DUNNO":
            fail(env, "RCPT request %d: want DUNNO, got %r" % (i, got),
                 server=env.pa)
    answers = [ask(env.pa, state="CONNECT", client="10.7.0.%d" % (i + 1),
                   sender="") for i in range(9)]
    if answers[:8] != ["DUNNO"] * 8 or not re.match(
            r"450 4\.7\.1 Rate limit exceeded for network 10\.7\.0\.0/24, "
            r"try again in \d+ seconds\Z", answers[8]):
        fail(env, "8 CONNECTs then a 450 for the network, got %r" % answers,
             server=env.pa)


def test_policy_missing_attribute_skips_the_rule_and_is_logged(env):
    got = ask(env.pa, client="10.8.0.1", sender="a@eight.example",
              rcpt="u@dest.example", sasl_username="")
    if got != "DUNNO":
        fail(env, "want DUNNO, got %r" % got, server=env.pa)
    if not wait_for(lambda: "ratelimit per-user: no SASL user in this "
                    "transaction; rule not applied" in env.pa.log(), 3):
        fail(env, "no debug line for the rule that did not apply",
             server=env.pa)
    # the null sender has no domain: sender_domain rules skip it
    got = ask(env.pa, client="10.8.0.2", sender="", rcpt="u@dest.example")
    if got != "DUNNO" or "ratelimit noisy: no sender domain" not in env.pa.log():
        fail(env, "null sender: want DUNNO and a debug line, got %r" % got,
             server=env.pa)


def test_two_policy_servers_share_every_bucket(env):
    client = "10.9.0.1"
    inst = [next_instance() for _ in range(4)]
    got = [ask(env.pa, client=client, sender="a%d@nine.example" % i,
               rcpt="u@dest.example", instance=inst[i]) for i in range(2)]
    got.append(ask(env.pb, client=client, sender="a2@nine.example",
                   rcpt="u@dest.example", instance=inst[2]))
    got.append(ask(env.pb, client=client, sender="a3@nine.example",
                   rcpt="u@dest.example", instance=inst[3]))
    if got[:3] != ["DUNNO"] * 3 or not got[3].startswith(
            "450 4.7.1 Rate limit exceeded for client %s, try again in "
            % client):
        fail(env, "3 on host A and B together, the 4th refused on B: %r"
             % got, server=env.pb)


def test_one_message_to_many_recipients_counts_once_for_messages(env):
    # Postfix asks once per recipient, on one connection, with one instance
    client = "10.10.0.1"
    inst = next_instance()
    with Client(env.pa) as c:
        got = [c.ask(request(client=client, sender="m@ten.example",
                             rcpt="u%d@dest.example" % i, instance=inst))
               for i in range(6)]
    if got != ["DUNNO"] * 6:
        fail(env, "one message to 6 recipients: %r" % got, server=env.pa)
    level = bucket(env, "per-client", client)["level"]
    if not 0.9 < level <= 1.0:
        fail(env, "one message charged %r messages" % level, server=env.pa)


def test_exactly_50_of_100_concurrent_requests_pass_a_limit_of_50(env):
    answers, errors = [], []
    lock = threading.Lock()

    def one(k):
        server = env.pa if k % 2 == 0 else env.pb
        try:
            with Client(server) as c:
                for j in range(5):
                    n = k * 5 + j
                    got = c.ask(request(client="10.11.%d.%d" % (
                        n // 50, n % 50 + 1),
                        sender="f%d@flood-sender.example" % n,
                        rcpt="u%d@flood.example" % n))
                    with lock:
                        answers.append(got)
        except Exception as e:
            with lock:
                errors.append("%s: %s" % (type(e).__name__, e))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    passed = [a for a in answers if a == "DUNNO"]
    limited = [a for a in answers if a.startswith(
        "450 4.7.1 Rate limit exceeded for recipient domain flood.example, "
        "try again in ")]
    if errors or len(answers) != 100 or len(passed) != 50 or \
            len(limited) != 50:
        fail(env, "20 clients x 5 requests against 50/1h: %d answers, %d "
             "passed, %d limited, errors %r, others %r" % (
                 len(answers), len(passed), len(limited), errors[:3],
                 [a for a in answers if a not in passed + limited][:3]),
             server=env.pa)
    level = bucket(env, "per-domain", "flood.example")["level"]
    if not 49.9 < level <= 50.0:
        fail(env, "Redis holds %r recipients for flood.example, want 50"
             % level)


def test_redis_down_gives_on_error_logged_once_and_limiting_resumes(env):
    # both servers have talked to Redis already
    ask(env.pa, client="10.20.0.1", sender="w@twenty.example")
    ask(env.strict, client="10.20.0.1", sender="w@twenty.example")
    before = len(env.pa.log().splitlines())
    port = env.redis.port
    env.redis.stop()
    try:
        got = [ask(env.pa, client="10.20.0.2", sender="d%d@twenty.example" % i)
               for i in range(5)]
        strict = ask(env.strict, client="10.20.0.2", sender="d@twenty.example")
    finally:
        env.redis = Redis(env.workdir, port=port).start()
    if got != ["DUNNO"] * 5:
        fail(env, "Redis down, on_error = accept: want DUNNO, got %r" % got,
             server=env.pa)
    if strict != "DEFER_IF_PERMIT 4.3.0 Rate limiting is temporarily " \
            "unavailable, try again later":
        fail(env, "Redis down, on_error = tempfail: got %r" % strict,
             server=env.strict)
    new = env.pa.log().splitlines()[before:]
    outage = [l for l in new if "failing fast" in l]
    symbols = [l for l in new if "RATELIMIT_ERROR" in l and "policy=" in l]
    if len(outage) != 1 or len(symbols) != 5:
        fail(env, "want one outage line and 5 RATELIMIT_ERROR summaries, got "
             "%d and %d" % (len(outage), len(symbols)), server=env.pa)
    # back: limiting resumes, no restart
    time.sleep(1.1)     # past the pool's fail-fast second
    client = "10.20.0.3"
    got = [ask(env.pa, client=client, sender="b%d@twenty.example" % i)
           for i in range(4)]
    if got[:3] != ["DUNNO"] * 3 or not got[3].startswith("450 4.7.1 "):
        fail(env, "after Redis came back: want 3 DUNNO then 450, got %r"
             % got, server=env.pa)


def test_redis_answering_garbage_is_on_error(env):
    client = "10.21.0.1"
    env.redis.command("HSET", "mxg:rl:per-client:%s" % client, "x", "1")
    got = ask(env.strict, client=client, sender="g@twentyone.example")
    if got != "DEFER_IF_PERMIT 4.3.0 Rate limiting is temporarily " \
            "unavailable, try again later":
        fail(env, "a bucket of the wrong type: want the on_error deferral, "
             "got %r" % got, server=env.strict)
    env.redis.command("SET", "mxg:rl:per-client:%s" % client, "garbage")
    if ask(env.pa, client=client, sender="g@twentyone.example") != "DUNNO":
        fail(env, "a bucket that is not a number: want DUNNO (accept)",
             server=env.pa)


# ---------------------------------------------------------------- tests: milter

def test_milter_burst_then_450_at_rcpt_then_one_more(env):
    client = "10.30.0.1"
    for i in range(3):
        expect_accepted(env, env.send(env.mx_b, client, "s%d@thirty.example" % i))
    res = env.send(env.mx_b, client, "s3@thirty.example")
    n = expect_limited(env, res, "RCPT", "client %s" % client)
    expect_accepted(env, env.send(env.mx_b, "10.30.0.2", "o@thirty.example"))
    time.sleep(n + 0.2)
    expect_accepted(env, env.send(env.mx_b, client, "s4@thirty.example"))


def test_milter_and_policy_share_the_same_buckets(env):
    client = "10.31.0.1"
    for i in range(3):
        expect_accepted(env, env.send(env.mx_a, client, "s%d@mixed.example" % i))
    expect_limited(env, env.send(env.mx_b, client, "s3@mixed.example"), "RCPT",
                   "client %s" % client)


def test_milter_bytes_are_limited_at_end_of_message(env):
    client = "10.32.0.1"
    body = "x" * 8000
    expect_accepted(env, env.send(env.mx_b, client, "a@bytes.example",
                                  body=body))
    res = env.send(env.mx_b, client, "b@bytes.example", body=body)
    expect_limited(env, res, "DOT", "client %s" % client)


def test_milter_score_rule_adds_its_symbol_over_the_limit(env):
    results = [env.send(env.mx_b, "10.33.0.%d" % (i + 1), "u%d@noisy.example" % i)
               for i in range(6)]
    for res in results:
        expect_accepted(env, res)
    last = results[-1]

    def line_of(res):
        return wait_for(lambda: next((l for l in env.milter.log().splitlines()
                                      if res.queue_id and " %s: " % res.queue_id
                                      in l and "action=" in l), None), 5)
    line = line_of(last)
    if line is None or "RATELIMIT_NOISY" not in line or "score=3.5" not in line:
        fail(env, "the 6th message of a burst of 5: want RATELIMIT_NOISY and "
             "score=3.5 in %r" % line, res=last)
    first = line_of(results[0])
    if first is None or "RATELIMIT_NOISY" in first:
        fail(env, "the 1st message must not have the symbol: %r" % first,
             res=results[0])


def test_milter_connections_are_limited_at_connect(env):
    results = [env.send(env.mx_b, "10.34.0.%d" % (i + 1), "c%d@conn.example" % i)
               for i in range(9)]
    for res in results[:8]:
        expect_accepted(env, res)
    last = results[8]
    bad = [r for r in last.replies if r.code >= 400]
    if not bad or bad[0].code != 450 or "Rate limit exceeded for network " \
            "10.34.0.0/24, try again in " not in bad[0].text:
        fail(env, "the 9th connection of a burst of 8: want a 450 naming the "
             "network, got %s" % bad, res=last)


def test_milter_one_message_to_three_recipients_counts_one_message(env):
    client = "10.35.0.1"
    res = env.send(env.mx_b, client, "m@three-rcpts.example",
                   rcpt=["a@dest.example", "b@dest.example", "c@dest.example"])
    expect_accepted(env, res)
    level = bucket(env, "per-client", client)["level"]
    if not 0.9 < level <= 1.0:
        fail(env, "one message to 3 recipients charged %r messages" % level,
             res=res)
    level = bucket(env, "per-domain", "dest.example")["level"]
    if not 2.9 < level <= 3.0:
        fail(env, "3 recipients charged %r recipients" % level, res=res)


def test_greylisted_recipient_is_not_charged(env):
    # mxguard check runs the milter's stages: greylisting first at RCPT
    path = os.path.join(env.workdir, "greylist-and-limits.conf")
    with open(path, "w") as f:
        f.write(milter_config(free_port(), env.redis.port) +
                "\n[greylist]\nenabled = yes\ndelay = 1h\n"
                "skip_recipients =\n")
    msg = os.path.join(env.workdir, "m.eml")
    with open(msg, "w") as f:
        f.write("From: a@grey.example\nSubject: hi\n\nhello\n")
    for i in range(5):
        p = subprocess.run([CLI, "check", "-c", path, "--ip", "10.36.0.1",
                            "--from", "g%d@grey.example" % i, "--rcpt",
                            "u@dest.example", "--json", msg],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        out = json.loads(p.stdout) if p.returncode == 0 else {}
        if not (out.get("reply") or "").startswith("451 4.7.1 Greylisted"):
            fail(env, "mxguard check: want the greylisting 451, got exit %d "
                 "%s %s" % (p.returncode, p.stdout, p.stderr))
    for rule, value in (("per-client", "10.36.0.1"),
                        ("per-domain", "dest.example"),
                        ("per-sender", "g0@grey.example")):
        if bucket(env, rule, value)["exists"]:
            fail(env, "a greylisted recipient charged %s %s" % (rule, value))


# ---------------------------------------------------------------- tests: CLI

def test_cli_shows_lists_and_resets_a_bucket(env):
    client = "10.40.0.1"
    for i in range(3):
        expect_accepted(env, env.send(env.mx_a, client, "s%d@cli.example" % i))
    b = bucket(env, "per-client", client)
    if not (b["exists"] and 2.5 < b["level"] <= 3 and b["burst"] == 3 and
            0 < b["seconds_until_free"] <= T_MESSAGES and
            b["key"] == "mxg:rl:per-client:%s" % client):
        fail(env, "show --json: %r" % b)
    rc, out, err = cli(env, "show", "per-client", client)
    if rc != 0 or "level: " not in out or "next message: accepted in " not in out:
        fail(env, "show: exit %d\n%s%s" % (rc, out, err))
    rc, out, err = cli(env, "top", "-n", "2", "--json")
    top = json.loads(out) if rc == 0 else None
    if not top or len(top) != 2 or top[0]["rule"] != "per-client" or \
            top[0]["value"] != client:
        fail(env, "top -n 2 --json: exit %d %s%s" % (rc, out, err))
    rc, out, err = cli(env, "top", "per-sender")
    if rc != 0 or "s0@cli.example" not in out or "per-client" in out:
        fail(env, "top per-sender: exit %d\n%s%s" % (rc, out, err))
    rc, out, err = cli(env, "reset", "per-client", client, "--json")
    if rc != 0 or json.loads(out)["deleted"] is not True:
        fail(env, "reset: exit %d %s%s" % (rc, out, err))
    if bucket(env, "per-client", client)["exists"]:
        fail(env, "the bucket is still there after reset")
    expect_accepted(env, env.send(env.mx_a, client, "s9@cli.example"))
    rc, out, err = cli(env, "show", "nope", client)
    if rc != 2 or "no [ratelimit nope]" not in err:
        fail(env, "an unknown rule: want exit 2, got %d %s" % (rc, err))
    rc, out, err = cli(env, "show", "per-client", "not-an-address")
    if rc != 2:
        fail(env, "a value that is not an address: want exit 2, got %d" % rc)


TESTS = [
    test_policy_burst_is_accepted_then_450_with_the_seconds_left_then_one_more,
    test_policy_sender_rule_limits_one_sender_across_many_client_ips,
    test_policy_deferred_recipient_consumes_no_budget,
    test_policy_sasl_user_rule_rejects_550_per_recipient,
    test_policy_bytes_are_limited_at_end_of_message_with_the_size,
    test_policy_skip_lists_exempt_networks_and_postmaster,
    test_policy_connect_counts_connections_and_rcpt_requests_do_not,
    test_policy_missing_attribute_skips_the_rule_and_is_logged,
    test_two_policy_servers_share_every_bucket,
    test_one_message_to_many_recipients_counts_once_for_messages,
    test_exactly_50_of_100_concurrent_requests_pass_a_limit_of_50,
    test_redis_down_gives_on_error_logged_once_and_limiting_resumes,
    test_redis_answering_garbage_is_on_error,
    test_milter_burst_then_450_at_rcpt_then_one_more,
    test_milter_and_policy_share_the_same_buckets,
    test_milter_bytes_are_limited_at_end_of_message,
    test_milter_score_rule_adds_its_symbol_over_the_limit,
    test_milter_connections_are_limited_at_connect,
    test_milter_one_message_to_three_recipients_counts_one_message,
    test_greylisted_recipient_is_not_charged,
    test_cli_shows_lists_and_resets_a_bucket,
]


# ---------------------------------------------------------------- runner

def policy_servers_exit_0_on_sigterm(env):
    problems = []
    for s in (env.pa, env.pb, env.strict):
        if s is None or s.proc is None:
            continue
        rc = s.stop()
        if rc != 0:
            problems.append("%s: exit status %r after SIGTERM" % (s.name, rc))
    return problems if env.pa is not None else None


def main(argv):
    pattern, _, keep = parse_args(argv)
    return run_suite(Env(keep=keep), selected(TESTS, pattern), keep,
                     before_each=clear_sink_and_redis,
                     stop_checks=[policy_servers_exit_0_on_sigterm],
                     log_check=("daemon_logs_have_no_sanitizer_reports",
                                ("policy-", "milter")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
