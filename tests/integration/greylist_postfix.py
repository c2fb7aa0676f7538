#!/usr/bin/python3
"""Greylisting through real Postfix with mxguard-milter, on loopback.

USAGE
    /usr/bin/python3 tests/integration/greylist_postfix.py [--build DIR]
        [-k SUBSTRING] [--keep]

    One environment per run: unbound serving the test zones
    (tests/harness/dnsserver.py), one redis-server, smtp-sink as the next
    hop, and two "MX hosts": two private Postfix instances, each with its
    own mxguard-milter, both milters on the one Redis. [greylist] delay is
    DELAY seconds and auto_whitelist 2, so the run takes under a minute and
    a half. Redis is flushed before each test; a test that needs another
    milter configuration restarts that milter on the same port.

    Mail is sent with swaks through XCLIENT so that Postfix and the milter
    see a client at 10.N.0.M (loopback clients are trusted and skip every
    check); each test uses its own 10.N.0.0/24, the triplet's network.

    Each test prints "ok - NAME" or "not ok - NAME: REASON" (with "#"
    diagnostic lines after it); the last line is "N passed, M failed".
    After the milters have stopped, their logs are searched for sanitizer
    reports (the ASan build: --build build-asan).

    --build DIR    use DIR/mxguard-milter (default build)
    -k SUBSTRING   run only the tests whose name contains SUBSTRING
    --keep         keep the work directory (it is kept anyway after a failure)

ENVIRONMENT
    MXGUARD_MILTER   path of mxguard-milter (default build/mxguard-milter)
"""

import os
import re
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

# --build DIR picks the build whose milter runs; it must be known before
# the harness is imported.
if "--build" in sys.argv:
    _build = sys.argv[sys.argv.index("--build") + 1]
    os.environ["MXGUARD_MILTER"] = os.path.join(
        HERE, "..", "..", _build, "mxguard-milter")

from testrun import (clear_sink_and_redis, indent, parse_args,  # noqa: E402
                     run_suite, selected, stop_each, TestFailure)
from mta import (Milter, Postfix, Redis, SmtpSink, free_port,  # noqa: E402
                 swaks, wait_for)

DELAY = 2
AUTO_WHITELIST = 2
RCPT = "rcpt@dest.example"

RECORDS = [
    # skip_spf_pass_domains = pass.test: SPF pass from 10.5.0.0/24.
    ("pass.test", "TXT", "v=spf1 ip4:10.5.0.0/24 -all"),
]


def milter_config(port, nameserver, redis_port, on_error="accept"):
    return """\
[milter]
socket = inet:{port}@127.0.0.1
authserv_id = mx.test.local
log_level = info

[dns]
nameserver = {nameserver}
timeout = 2s
on_error = accept

[spf]
enabled = yes
reject_fail = no

[dkim]
enabled = no

[dmarc]
enabled = no

[redis]
server = 127.0.0.1:{redis_port}
connect_timeout = 500ms
command_timeout = 1s

[greylist]
enabled = yes
delay = {delay}s
retry_window = 1h
max_age = 1d
auto_whitelist = {awl}
skip_networks = 10.99.0.0/24
skip_hostnames = pool.trusted.example
skip_recipients = postmaster@
skip_authenticated = yes
skip_spf_pass_domains = pass.test
on_error = {on_error}
""".format(port=port, nameserver=nameserver, redis_port=redis_port,
           delay=DELAY, awl=AUTO_WHITELIST, on_error=on_error)


# ---------------------------------------------------------------- environment

class Host:
    """One MX host: a Postfix and its milter."""

    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.milter_port = free_port()
        self.milter = None
        self.postfix = None
        self.milter_text = None

    def start(self):
        self.use_milter()
        self.postfix = Postfix(os.path.join(self.env.workdir, self.name),
                               "inet:127.0.0.1:%d" % self.milter_port,
                               self.env.sink.port, sink=self.env.sink).start()

    def use_milter(self, **overrides):
        text = milter_config(self.milter_port, self.env.dns.address,
                             self.env.redis.port, **overrides)
        if self.milter is not None and self.milter.running() \
                and self.milter.config_text == text:
            return self.milter
        if self.milter is not None:
            self.milter.stop()
        self.milter = Milter(self.env.workdir, text)
        self.milter.start()
        return self.milter

    def stop(self):
        return stop_each(("%s %r" % (self.name, obj), obj)
                         for obj in (self.postfix, self.milter))


class Env:
    def __init__(self, keep=False):
        self.keep = keep
        self.workdir = None
        self.dns = self.redis = self.sink = None
        self.a = self.b = None
        self._seq = 0

    def start(self):
        from dnsserver import DnsServer
        self.workdir = tempfile.mkdtemp(prefix="mxguard-gl-")
        os.chmod(self.workdir, 0o755)
        self.dns = DnsServer(os.path.join(self.workdir, "dns"))
        self.dns.set_records(RECORDS)
        self.dns.start()
        self.redis = Redis(self.workdir).start()
        self.sink = SmtpSink(self.workdir).start()
        self.a = Host(self, "mx-a")
        self.b = Host(self, "mx-b")
        self.a.start()
        self.b.start()
        return self

    def stop(self):
        errors = []
        for host in (self.a, self.b):
            if host is not None:
                errors += host.stop()
        errors += stop_each((repr(obj), obj) for obj in
                            (self.sink, self.redis, self.dns))
        return errors

    def send(self, host, client, mail_from="sender@example.org", rcpt=RCPT,
             name="host.example", extra_args=()):
        """One message through host's Postfix from client (XCLIENT)."""
        self._seq += 1
        test_id = "gl%d-%d" % (os.getpid(), self._seq)
        res = swaks(host.postfix.port, mail_from, rcpt, helo="mail.example.org",
                    xclient_addr=client, xclient_name=name,
                    headers=["X-Test-Id: %s" % test_id],
                    extra_args=extra_args, timeout=30)
        res.client = client
        res.test_id = test_id
        res.host = host
        res.sent_at = time.monotonic()
        return res


# ---------------------------------------------------------------- assertions

def fail(reason, res=None, host=None, extra=None):
    parts = [reason]
    if res is not None:
        host = host or res.host
        parts.append("swaks exit %s, decisive reply: %s (stage %s)\nswaks "
                     "transcript:\n%s" % (res.rc, res.final,
                                          res.final.stage if res.final else "-",
                                          indent(res.transcript)))
    if extra:
        parts.append(extra)
    if host is not None and host.milter is not None:
        parts.append("milter log of %s (%s):\n%s" % (
            host.name, host.milter.log_path, indent(host.milter.log(), 20)))
    if host is not None and host.postfix is not None and res is not None:
        lines = [l for l in host.postfix.log().splitlines()
                 if "[%s]" % res.client in l]
        parts.append("postfix log of %s for client %s:\n%s"
                     % (host.name, res.client, indent("\n".join(lines), 20)))
    raise TestFailure("\n".join(parts))


GREYLISTED = re.compile(r"^Greylisted, try again in (\d+) seconds$")


def expect_greylisted(res):
    """451 4.7.1 at RCPT TO with the time left; returns the seconds."""
    r = res.final
    m = GREYLISTED.match(r.text) if r is not None else None
    if r is None or r.stage != "RCPT" or r.code != 451 or r.enhanced != "4.7.1" \
            or not m:
        fail("expected 451 4.7.1 Greylisted, try again in N seconds at RCPT, "
             "got %s" % r, res=res)
    return int(m.group(1))


def expect_reply(res, stage, code, enhanced):
    r = res.final
    if r is None or r.stage != stage or r.code != code or r.enhanced != enhanced:
        fail("expected %d %s at %s, got %s" % (code, enhanced, stage, r), res=res)


def delivered_copy(env, res, timeout=10):
    def find():
        for m in env.sink.messages():
            if res.test_id in m.header("X-Test-Id"):
                return m
        return None
    return wait_for(find, timeout, interval=0.1)


def expect_delivered(env, res):
    r = res.final
    if r is None or r.stage != "DOT" or r.code != 250:
        fail("expected 250 at end of DATA, got %s" % r, res=res)
    if delivered_copy(env, res) is None:
        fail("message %s accepted but not delivered to smtp-sink" % res.test_id,
             res=res)


def expect_not_delivered(env, res, settle=0.5):
    time.sleep(settle)
    if any(res.test_id in m.header("X-Test-Id") for m in env.sink.messages()):
        fail("a refused message was delivered", res=res)
    if res.host.postfix.queue():
        fail("the queue of %s is not empty: %s" % (res.host.name,
                                                   res.host.postfix.queue()),
             res=res)


def summary_line(res, timeout=3):
    """The milter's summary line for res's accepted message (by queue id)."""
    qid = res.queue_id

    def find():
        for line in res.host.milter.log().splitlines():
            if qid and (" %s: " % qid) in line and " action=" in line:
                return line
        return None
    line = wait_for(find, timeout, interval=0.1)
    if line is None:
        fail("no summary line with queue id %s in the milter log" % qid, res=res)
    return line


def expect_symbol(res, symbol):
    line = summary_line(res)
    m = re.search(r" symbols=(\S+)", line)
    if not m or symbol not in m.group(1).split(","):
        fail("expected symbol %s in the summary line: %r" % (symbol, line),
             res=res)


def wait_past_delay(since):
    """Sleeps until DELAY seconds (plus a margin) after `since`."""
    left = since + DELAY + 0.15 - time.monotonic()
    if left > 0:
        time.sleep(left)


def expect_no_greylist_state(env, res):
    """A skipped message must not have touched Redis."""
    n = env.redis.command("DBSIZE")
    if n != ":0":
        fail("a skipped message wrote greylisting state (DBSIZE %s)" % n,
             res=res)


# ---------------------------------------------------------------- tests

def test_first_attempt_gets_451_with_the_time_left_early_retry_451_then_250(env):
    client = "10.1.0.1"
    first = env.send(env.a, client)
    n1 = expect_greylisted(first)
    if n1 != DELAY:
        fail("first attempt: want %d seconds left, got %d" % (DELAY, n1), res=first)
    expect_not_delivered(env, first, settle=0)
    early = env.send(env.a, client)
    n2 = expect_greylisted(early)
    if not 0 < n2 <= n1:
        fail("early retry: want 0 < N <= %d, got %d" % (n1, n2), res=early)
    wait_past_delay(first.sent_at)
    late = env.send(env.a, client)
    expect_delivered(env, late)
    expect_symbol(late, "GREYLIST_PASS")
    # known now: a further message passes at once
    again = env.send(env.a, client)
    expect_delivered(env, again)


def test_time_left_in_the_reply_is_the_real_time_left(env):
    client = "10.2.0.1"
    first = env.send(env.a, client)
    expect_greylisted(first)
    time.sleep(1.05)
    second = env.send(env.a, client)
    n = expect_greylisted(second)
    if n != DELAY - 1:
        fail("after 1 s of a %d s delay, want %d seconds left, got %d"
             % (DELAY, DELAY - 1, n), res=second)


def test_auto_whitelist_after_two_passed_triplets_lets_a_new_triplet_pass_at_once(env):
    senders = ["s%d@example.org" % i for i in range(AUTO_WHITELIST)]
    started = time.monotonic()
    for s in senders:
        expect_greylisted(env.send(env.a, "10.3.0.1", mail_from=s))
    wait_past_delay(started + 0.5)
    for s in senders:
        expect_delivered(env, env.send(env.a, "10.3.0.1", mail_from=s))
    res = env.send(env.a, "10.3.0.200", mail_from="brand-new@example.org",
                   rcpt="someone-else@dest.example")
    expect_delivered(env, res)
    expect_symbol(res, "GREYLIST_AWL")
    # another network is still greylisted
    expect_greylisted(env.send(env.a, "10.33.0.1", mail_from="brand-new@example.org"))


def test_one_passed_triplet_short_of_the_auto_whitelist_is_not_enough(env):
    started = time.monotonic()
    expect_greylisted(env.send(env.a, "10.4.0.1", mail_from="one@example.org"))
    wait_past_delay(started + 0.3)
    expect_delivered(env, env.send(env.a, "10.4.0.1", mail_from="one@example.org"))
    expect_greylisted(env.send(env.a, "10.4.0.2", mail_from="two@example.org"))


def test_skip_networks_client_is_not_greylisted(env):
    res = env.send(env.a, "10.99.0.5")
    expect_delivered(env, res)
    expect_symbol(res, "GREYLIST_SKIP")
    expect_no_greylist_state(env, res)


def test_skip_recipients_postmaster_is_not_greylisted(env):
    res = env.send(env.a, "10.6.0.1", rcpt="postmaster@dest.example")
    expect_delivered(env, res)
    expect_symbol(res, "GREYLIST_SKIP")
    expect_no_greylist_state(env, res)


def test_skip_recipients_spares_only_that_recipient_of_a_message(env):
    res = env.send(env.a, "10.6.0.2", rcpt=["postmaster@dest.example", RCPT])
    # the listed recipient is accepted, the other deferred; the message
    # goes to the one accepted
    rcpt_replies = [r for r in res.replies if r.stage == "RCPT"]
    codes = [(r.code, r.enhanced) for r in rcpt_replies]
    if codes != [(250, "2.1.5"), (451, "4.7.1")]:
        fail("want RCPT replies 250 2.1.5 then 451 4.7.1, got %s" %
             [str(r) for r in rcpt_replies], res=res)
    if not any(r.stage == "DOT" and r.code == 250 for r in res.replies):
        fail("the message was not accepted for the postmaster", res=res)
    msg = delivered_copy(env, res)
    if msg is None or msg.rcpt_to != ["postmaster@dest.example"]:
        fail("want delivery to postmaster@ only, got %r" %
             (msg.rcpt_to if msg else None), res=res)


def test_skip_hostnames_client_name_is_not_greylisted(env):
    res = env.send(env.a, "10.7.0.1", name="mx7.pool.trusted.example")
    expect_delivered(env, res)
    expect_symbol(res, "GREYLIST_SKIP")
    expect_no_greylist_state(env, res)
    # a look-alike name is greylisted
    expect_greylisted(env.send(env.a, "10.7.0.2", name="pool.trusted.example.evil.example"))


def test_skip_spf_pass_domains_sender_is_not_greylisted(env):
    res = env.send(env.a, "10.5.0.1", mail_from="alice@pass.test")
    expect_delivered(env, res)
    expect_symbol(res, "GREYLIST_SKIP")
    expect_no_greylist_state(env, res)
    # the same domain from a client its SPF does not list is greylisted
    expect_greylisted(env.send(env.a, "10.55.0.1", mail_from="alice@pass.test"))


def test_authenticated_client_xclient_login_is_not_greylisted(env):
    res = env.send(env.a, "10.8.0.1", extra_args=["--xclient-login", "alice"])
    if res.final is not None and res.final.stage == "XCLIENT":
        fail("Postfix refused XCLIENT LOGIN: %s" % res.final, res=res)
    expect_delivered(env, res)
    expect_symbol(res, "GREYLIST_SKIP")
    expect_no_greylist_state(env, res)
    # Postfix hands the XCLIENT LOGIN name to the milter as {auth_authen};
    # without it the same message is greylisted
    expect_greylisted(env.send(env.a, "10.8.0.2"))


def test_a_triplet_first_seen_on_host_a_passes_on_host_b_after_the_delay(env):
    client = "10.9.0.1"
    first = env.send(env.a, client)
    expect_greylisted(first)
    early = env.send(env.b, client)
    n = expect_greylisted(early)
    if n > DELAY:
        fail("host B: want at most %d seconds left, got %d" % (DELAY, n), res=early)
    wait_past_delay(first.sent_at)
    late = env.send(env.b, client)
    expect_delivered(env, late)
    expect_symbol(late, "GREYLIST_PASS")
    # and host A knows it passed
    expect_delivered(env, env.send(env.a, client))


def wait_until_greylisting_works(env, host, net):
    """Sends from new clients in net (10.N.0) until one is deferred: the
    milter's pool may still fail fast after an earlier test's outage."""
    for i in range(1, 30):
        res = env.send(host, "%s.%d" % (net, i), mail_from="probe@example.org")
        if res.final is not None and res.final.code == 451 \
                and res.final.enhanced == "4.7.1":
            return
        time.sleep(0.2)
    fail("%s never deferred a new triplet" % host.name, res=res)


def _outage_log_lines(log_lines):
    """Milter log lines about Redis that are not summary lines."""
    return [l for l in log_lines if re.search(r"redis", l, re.I)
            and " action=" not in l]


def test_redis_down_with_on_error_accept_delivers_logs_once_and_resumes(env):
    host = env.a
    host.use_milter(on_error="accept")
    # the milter has talked to Redis: its pool holds a connection
    wait_until_greylisting_works(env, host, "10.10.0")
    before = len(host.milter.log().splitlines())
    env.redis.stop()
    try:
        sent = []
        for i in range(3):
            res = env.send(host, "10.10.%d.1" % (i + 1),
                           mail_from="down%d@example.org" % i)
            expect_delivered(env, res)
            expect_symbol(res, "GREYLIST_ERROR")
            sent.append(res)
            time.sleep(0.4)  # spread over the pool's 1 s fail-fast window
    finally:
        env.redis.start()  # same port
    new = host.milter.log().splitlines()[before:]
    about = _outage_log_lines(new)
    if len(about) != 1:
        fail("want the outage logged once for 3 messages, got %d lines"
             % len(about), host=host,
             extra="new milter log lines:\n" + indent("\n".join(new)))
    # Redis is back on the same port: greylisting resumes, no restart
    time.sleep(1.1)  # past the pool's fail-fast second
    res = env.send(host, "10.10.9.1", mail_from="after@example.org")
    expect_greylisted(res)
    new = host.milter.log().splitlines()[before:]
    back = [l for l in new if re.search(r"redis.*answering again", l, re.I)]
    if len(back) != 1:
        fail("want one 'answering again' line, got %d" % len(back), host=host,
             extra="new milter log lines:\n" + indent("\n".join(new)))
    if not host.milter.running():
        fail("the milter died", host=host)


def test_a_redis_restart_between_two_messages_costs_no_decision(env):
    # Redis restarts while the milter is idle: the connection its pool
    # keeps is dead, but Redis answers; the next message must be judged.
    host = env.a
    host.use_milter(on_error="accept")
    wait_until_greylisting_works(env, host, "10.12.0")
    env.redis.stop()
    env.redis.start()
    res = env.send(host, "10.12.1.1", mail_from="after-restart@example.org")
    if res.final is not None and res.final.code == 250:
        line = summary_line(res)
        fail("Redis was up, yet the message was not greylisted: %s"
             % line[line.find("symbols="):], res=res)
    expect_greylisted(res)


def test_the_outage_log_line_names_the_redis_server_and_port(env):
    host = env.a
    host.use_milter(on_error="accept")
    wait_until_greylisting_works(env, host, "10.13.0")
    before = len(host.milter.log().splitlines())
    env.redis.stop()
    try:
        expect_delivered(env, env.send(host, "10.13.1.1"))
    finally:
        env.redis.start()
    about = _outage_log_lines(host.milter.log().splitlines()[before:])
    want = "127.0.0.1:%d" % env.redis.port
    if len(about) != 1 or want not in about[0]:
        fail("want one outage line naming %s, got %r" % (want, about), host=host)


def test_redis_down_with_on_error_tempfail_gets_451_4_3_0(env):
    host = env.b
    host.use_milter(on_error="tempfail")
    env.redis.stop()
    try:
        res = env.send(host, "10.11.0.1")
        expect_reply(res, "RCPT", 451, "4.3.0")
        expect_not_delivered(env, res)
        # skip lists need no Redis: the postmaster still gets mail
        res = env.send(host, "10.11.0.2", rcpt="postmaster@dest.example")
        expect_delivered(env, res)
    finally:
        env.redis.start()
        host.use_milter()


TESTS = [
    test_first_attempt_gets_451_with_the_time_left_early_retry_451_then_250,
    test_time_left_in_the_reply_is_the_real_time_left,
    test_auto_whitelist_after_two_passed_triplets_lets_a_new_triplet_pass_at_once,
    test_one_passed_triplet_short_of_the_auto_whitelist_is_not_enough,
    test_skip_networks_client_is_not_greylisted,
    test_skip_recipients_postmaster_is_not_greylisted,
    test_skip_recipients_spares_only_that_recipient_of_a_message,
    test_skip_hostnames_client_name_is_not_greylisted,
    test_skip_spf_pass_domains_sender_is_not_greylisted,
    test_authenticated_client_xclient_login_is_not_greylisted,
    test_a_triplet_first_seen_on_host_a_passes_on_host_b_after_the_delay,
    test_redis_down_with_on_error_accept_delivers_logs_once_and_resumes,
    test_a_redis_restart_between_two_messages_costs_no_decision,
    test_the_outage_log_line_names_the_redis_server_and_port,
    test_redis_down_with_on_error_tempfail_gets_451_4_3_0,
]


# ---------------------------------------------------------------- runner

def main(argv):
    pattern, _, keep = parse_args(argv)
    return run_suite(Env(keep=keep), selected(TESTS, pattern), keep,
                     before_each=clear_sink_and_redis)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
