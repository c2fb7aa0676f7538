#!/usr/bin/python3
"""Integration tests: mxguard-milter behind a real Postfix, on loopback.

USAGE
    /usr/bin/python3 tests/integration/run.py [-k SUBSTRING] [--keep]

    One environment per run, started once: unbound serving the test zones
    (tests/harness/dnsserver.py), Redis, smtp-sink as the next hop, a private
    Postfix with smtpd_milters pointing at mxguard-milter.  A test that needs
    another milter configuration restarts the milter on the same port.

    Mail is sent with swaks through XCLIENT, so that Postfix and the milter
    see a TEST-NET client (192.0.2.N) instead of 127.0.0.1, which libspf2
    would let pass unconditionally.  DKIM-signed mail is signed by dkimpy
    with a key made at start (tests/harness/dkimkeys.py) and published in
    the test zones; DKIM and DMARC cases beyond these Postfix rows are in
    tests/integration/dkim_dmarc.py.

    Each test prints "ok - NAME" or "not ok - NAME: REASON" (with "#"
    diagnostic lines after it); the last line is "N passed, M failed".
    Exit status 1 when a test failed or the environment did not start.

    -k SUBSTRING   run only the tests whose name contains SUBSTRING
    --build DIR    use DIR/mxguard-milter (default build; make asan: build-asan)
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
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

# --build DIR picks the build whose milter runs (make asan passes
# build-asan); it must be known before the harness is imported.
if "--build" in sys.argv:
    _build = sys.argv[sys.argv.index("--build") + 1]
    os.environ["MXGUARD_MILTER"] = os.path.join(
        HERE, "..", "..", _build, "mxguard-milter")

from testrun import (clear_sink, indent, parse_args, run_suite,  # noqa: E402
                     selected, stop_each, TestFailure)
from mta import (Milter, MilterShutdownError, Postfix, Redis, SmtpSink,  # noqa: E402
                 free_port, swaks, wait_for)
from dkimkeys import KeyPair, make_message, sign_dkimpy  # noqa: E402

AUTHSERV_ID = "mx.test.local"
RCPT = "rcpt@dest.example"

# The test zones.  192.0.2.0/24 is the client network of every test.
RECORDS = [
    ("pass.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
    ("fail.test", "TXT", "v=spf1 ip4:198.51.100.1 -all"),
    ("softfail.test", "TXT", "v=spf1 ~all"),
    # HELO identity (RFC 7208 2.3): checked when MAIL FROM is <>.
    ("helo.test", "TXT", "v=spf1 -all"),
    ("mx1.helo.test", "TXT", "v=spf1 a -all"),
    ("mx1.helo.test", "A", "192.0.2.25"),
    ("helo.test", "MX", (10, "mx1.helo.test")),
    # Every query for this name fails (REFUSED -> SERVFAIL in the milter's
    # resolver): SPF temperror.
    ("temperror.test", "TIMEOUT", None),
    # DMARC: From domains whose policy a message sent from pass.test (SPF
    # pass, not aligned, no signature) fails.
    # A DNSBL listing one client, 192.0.2.250 (code 127.0.0.2).
    ("250.2.0.192.bl.test", "A", "127.0.0.2"),
    ("_dmarc.dmarc-reject.test", "TXT", "v=DMARC1; p=reject"),
    ("_dmarc.dmarc-quarantine.test", "TXT", "v=DMARC1; p=quarantine"),
    # DKIM: signed.test signs its mail (key record added at start, the key
    # is generated then) and publishes p=reject.
    ("signed.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
    ("_dmarc.signed.test", "TXT", "v=DMARC1; p=reject"),
]
DKIM_SELECTOR = "it"
DKIM_DOMAIN = "signed.test"
HELO_CLIENT = "192.0.2.25"


def milter_config(port, nameserver, workdir, received_spf="yes",
                  on_error="tempfail", reject_fail="yes", spf_enabled="yes",
                  dns_timeout="2s", dmarc_quarantine=None, actions=None,
                  dnsbl=False):
    # [dkim] and [dmarc] run with their defaults (both enabled, DMARC
    # enforced); only what a test changes is written. The default rules
    # of the checkout are loaded.
    extra = "\n[rules]\nfiles = %s/rules/*.rules\n" % REPO_ROOT
    if dmarc_quarantine is not None:
        extra += "\n[dmarc]\nquarantine = %s\n" % dmarc_quarantine
    if dnsbl:
        extra += ("\n[dnsbl testbl]\nzone = bl.test\ntype = client\n"
                  "score = 1\ncodes = 127.0.0.2=20\n")
    if actions is not None:
        extra += "\n[actions]\n" + "".join(
            "%s = %s\n" % kv for kv in sorted(actions.items()))
    return """\
[milter]
socket = inet:{port}@127.0.0.1
pidfile = {workdir}/milter.pid
authserv_id = {authserv_id}

[dns]
nameserver = {nameserver}
timeout = {dns_timeout}
on_error = {on_error}

[spf]
enabled = {spf_enabled}
reject_fail = {reject_fail}
received_spf = {received_spf}
""".format(port=port, workdir=workdir, authserv_id=AUTHSERV_ID,
           nameserver=nameserver, dns_timeout=dns_timeout, on_error=on_error,
           spf_enabled=spf_enabled, reject_fail=reject_fail,
           received_spf=received_spf) + extra


# ---------------------------------------------------------------- environment

class Env:
    """DNS + Redis + smtp-sink + milter + Postfix, started once."""

    def __init__(self, keep=False):
        self.keep = keep
        self.workdir = None
        self.dns = self.redis = self.sink = self.milter = self.postfix = None
        self._client = 100
        self._test_seq = 0

    def start(self):
        from dnsserver import DnsServer
        self.workdir = tempfile.mkdtemp(prefix="mxguard-it-")
        os.chmod(self.workdir, 0o755)
        dns_dir = os.path.join(self.workdir, "dns")
        os.makedirs(dns_dir)
        self.dns = DnsServer(dns_dir)
        self.dkim_key = KeyPair.rsa(DKIM_SELECTOR, DKIM_DOMAIN, 2048,
                                    os.path.join(self.workdir, "keys"))
        self.dns.set_records(RECORDS + [self.dkim_key.record()])
        self.dns.start()
        self.redis = Redis(self.workdir).start()
        self.sink = SmtpSink(self.workdir).start()
        self.milter_port = free_port()
        self.use_milter()
        self.postfix = Postfix(self.workdir, "inet:127.0.0.1:%d" % self.milter_port,
                               self.sink.port, sink=self.sink).start()
        return self

    def stop(self):
        return stop_each((name, getattr(self, name)) for name in
                         ("postfix", "milter", "sink", "redis", "dns"))

    def milter_text(self, **overrides):
        return milter_config(self.milter_port, self.dns.address, self.workdir,
                             **overrides)

    def use_milter(self, **overrides):
        """Make sure the milter runs with this configuration (defaults plus
        overrides); restart it only when the configuration changes."""
        text = self.milter_text(**overrides)
        if self.milter is not None and self.milter.running() \
                and self.milter.config_text == text:
            return self.milter
        if self.milter is not None:
            self.milter.stop()
        self.milter = Milter(self.workdir, text)
        self.milter.start()
        return self.milter

    def next_client(self):
        self._client += 1
        return "192.0.2.%d" % self._client

    def send(self, mail_from, helo="mail.client.example", client=None,
             headers=(), rcpt=RCPT, message=None):
        """Send one message through Postfix; returns (SwaksResult, test_id).
        test_id is in an X-Test-Id header to find the delivered copy.
        message (bytes, CRLF) replaces swaks' own message; the X-Test-Id
        header is put on top of it (after any DKIM signing: it is not
        signed, so the signature still holds)."""
        self._test_seq += 1
        test_id = "t%d-%d" % (os.getpid(), self._test_seq)
        client = client or self.next_client()
        if message is None:
            res = swaks(self.postfix.port, mail_from, rcpt, helo=helo,
                        xclient_addr=client, xclient_name="host.example",
                        headers=["X-Test-Id: %s" % test_id] + list(headers),
                        timeout=30)
        else:
            path = os.path.join(self.workdir, "message-%s.eml" % test_id)
            with open(path, "wb") as f:
                f.write(b"X-Test-Id: %s\r\n" % test_id.encode() + message)
            res = swaks(self.postfix.port, mail_from, rcpt, helo=helo,
                        xclient_addr=client, xclient_name="host.example",
                        data=path, timeout=30)
        res.client = client
        res.test_id = test_id
        return res

    def delivered(self, res, timeout=10):
        """The delivered copy of res's message (waits for it), or fail."""
        def find():
            for m in self.sink.messages():
                if res.test_id in m.header("X-Test-Id"):
                    return m
            return None
        msg = wait_for(find, timeout, interval=0.1)
        if msg is None:
            fail("message %s was not delivered within %ss" % (res.test_id, timeout),
                 res=res, env=self)
        return msg

    def assert_not_delivered_nor_queued(self, res, settle=1.0):
        time.sleep(settle)
        got = [m for m in self.sink.messages() if res.test_id in m.header("X-Test-Id")]
        if got:
            fail("refused message was delivered anyway", res=res, env=self,
                 extra="delivered copy:\n" + got[0].text)
        queued = self.postfix.queue()
        if queued:
            fail("queue is not empty: %s" % queued, res=res, env=self)


# ---------------------------------------------------------------- assertions

def _indent(text, limit=60):
    return indent(text, limit)


def fail(reason, res=None, env=None, extra=None):
    parts = [reason]
    if res is not None:
        parts.append("swaks exit %s, decisive reply: %s (stage %s)\n"
                     "swaks transcript:\n%s"
                     % (res.rc, res.final, res.final.stage if res.final else "-",
                        _indent(res.transcript)))
    if extra:
        parts.append(extra)
    if env is not None and env.milter is not None:
        parts.append("milter log (%s):\n%s" % (env.milter.log_path,
                                               _indent(env.milter.log(), 25)))
    if env is not None and env.postfix is not None and res is not None:
        lines = [l for l in env.postfix.log().splitlines()
                 if res.client and "[%s]" % res.client in l
                 or (res.queue_id and res.queue_id in l)]
        parts.append("postfix log for client %s:\n%s"
                     % (res.client, _indent("\n".join(lines), 25)))
    raise TestFailure("\n".join(parts))


def expect_reply(res, code, enhanced, env):
    r = res.final
    if r is None or r.code != code or r.enhanced != enhanced:
        fail("expected %d %s, got %s" % (code, enhanced, r), res=res, env=env)


def expect_accepted(res, env):
    r = res.final
    if r is None or r.stage != "DOT" or r.code != 250:
        fail("expected 250 at end of DATA, got %s" % r, res=res, env=env)


def our_authres(msg):
    """Values of the Authentication-Results headers naming our authserv-id."""
    return [v for v in msg.header("Authentication-Results")
            if re.match(r"\s*(?:\([^)]*\)\s*)*%s\s*;" % re.escape(AUTHSERV_ID),
                        v, re.I)]


def expect_one_authres(msg, pattern, res, env):
    ours = our_authres(msg)
    if len(ours) != 1 or not re.search(pattern, ours[0]):
        fail("expected exactly one Authentication-Results from %s matching /%s/, "
             "got %r" % (AUTHSERV_ID, pattern, msg.header("Authentication-Results")),
             res=res, env=env, extra="delivered copy:\n" + _indent(msg.text))
    return ours[0]


def spf_authres(result, ident="mailfrom", domain=None):
    """Regex for 'mx.test.local; ... spf=RESULT ... smtp.IDENT=[local@]DOMAIN'."""
    pat = r"^\s*mx\.test\.local\s*;(?:.*;)?\s*spf=%s\b[^;]*" % result
    if domain:
        pat += r"\bsmtp\.%s=(?:[^\s;@]*@)?%s(?=[\s;]|$)" % (ident, re.escape(domain))
    return pat


# ---------------------------------------------------------------- tests

def test_spf_pass_is_delivered_with_authentication_results(env):
    env.use_milter(received_spf="yes")
    res = env.send("alice@pass.test", helo="mail.pass.test")
    expect_accepted(res, env)
    msg = env.delivered(res)
    expect_one_authres(msg, spf_authres("pass", "mailfrom", "pass.test"), res, env)


def test_spf_pass_adds_received_spf_pass_when_received_spf_is_yes(env):
    env.use_milter(received_spf="yes")
    res = env.send("alice@pass.test", helo="mail.pass.test")
    expect_accepted(res, env)
    msg = env.delivered(res)
    rspf = msg.header("Received-SPF")
    if len(rspf) != 1 or not re.match(r"\s*pass\b", rspf[0], re.I) \
            or "client-ip=%s" % res.client not in rspf[0]:
        fail("expected one 'Received-SPF: pass ... client-ip=%s', got %r"
             % (res.client, rspf), res=res, env=env,
             extra="delivered copy:\n" + _indent(msg.text))


def test_spf_pass_adds_no_received_spf_when_received_spf_is_no(env):
    env.use_milter(received_spf="no")
    res = env.send("alice@pass.test", helo="mail.pass.test")
    expect_accepted(res, env)
    msg = env.delivered(res)
    if msg.header("Received-SPF"):
        fail("unexpected Received-SPF: %r" % msg.header("Received-SPF"),
             res=res, env=env)
    expect_one_authres(msg, spf_authres("pass", "mailfrom", "pass.test"), res, env)


def test_spf_fail_is_refused_with_550_5_7_23_and_not_delivered_when_reject_fail_is_yes(env):
    env.use_milter(reject_fail="yes")
    res = env.send("mallory@fail.test", helo="mail.fail.test")
    expect_reply(res, 550, "5.7.23", env)
    env.assert_not_delivered_nor_queued(res)


def test_refusal_text_reaches_the_client_as_the_milter_logged_it(env):
    # libmilter reply text is a printf format for the MTA: a lone "%" (as in
    # a URL-encoded address) must be sent as "%%" or the MTA eats it.
    env.use_milter(reject_fail="yes")
    res = env.send("mallory+tag@fail.test", helo="mail.fail.test")
    expect_reply(res, 550, "5.7.23", env)
    line = wait_for(lambda: next((l for l in env.milter.log().splitlines()
                                  if res.client in l and "action=" in l), None), 3)
    m = re.search(r'\breply="((?:[^"\\]|\\.)*)"', line or "")
    if not m:
        return  # the summary line does not quote the reply: nothing to compare
    logged = re.sub(r"\\(.)", r"\1", m.group(1))
    heard = "%d %s %s" % (res.final.code, res.final.enhanced, res.final.text)
    if heard != logged:
        fail("client heard %r, milter logged reply %r" % (heard, logged),
             res=res, env=env)


def test_spf_fail_is_delivered_with_spf_fail_when_reject_fail_is_no(env):
    env.use_milter(reject_fail="no")
    res = env.send("mallory@fail.test", helo="mail.fail.test")
    expect_accepted(res, env)
    msg = env.delivered(res)
    expect_one_authres(msg, spf_authres("fail", "mailfrom", "fail.test"), res, env)


def test_spf_softfail_is_delivered_with_spf_softfail(env):
    env.use_milter()
    res = env.send("bob@softfail.test", helo="mail.softfail.test")
    expect_accepted(res, env)
    msg = env.delivered(res)
    expect_one_authres(msg, spf_authres("softfail", "mailfrom", "softfail.test"),
                       res, env)


def test_dns_servfail_for_the_sender_domain_is_refused_with_451_4_4_3(env):
    env.use_milter(on_error="tempfail")
    res = env.send("carol@temperror.test", helo="mail.temperror.test")
    expect_reply(res, 451, "4.4.3", env)
    env.assert_not_delivered_nor_queued(res)


def test_dns_server_down_is_refused_with_451_4_4_3_when_on_error_is_tempfail(env):
    env.use_milter(on_error="tempfail")
    env.dns.stop()
    try:
        # a name no earlier test asked for: nothing cached in the milter
        res = env.send("dave@dnsdown-tempfail.test", helo="mail.dnsdown.test")
    finally:
        env.dns.start()
    expect_reply(res, 451, "4.4.3", env)
    env.assert_not_delivered_nor_queued(res)


def test_dns_server_down_is_delivered_with_spf_temperror_when_on_error_is_accept(env):
    env.use_milter(on_error="accept")
    env.dns.stop()
    try:
        res = env.send("erin@dnsdown-accept.test", helo="mail.dnsdown.test")
    finally:
        env.dns.start()
    expect_accepted(res, env)
    msg = env.delivered(res)
    expect_one_authres(msg, spf_authres("temperror", "mailfrom",
                                        "dnsdown-accept.test"), res, env)


def test_forged_authentication_results_for_our_id_are_removed_and_others_kept(env):
    env.use_milter()
    forged = ["Authentication-Results: mx.test.local; spf=pass "
              "smtp.mailfrom=forged-one.example",
              "Authentication-Results: (sneaky) MX.Test.Local; dkim=pass "
              "header.d=forged-two.example",
              "Authentication-Results: other.example; spf=fail "
              "smtp.mailfrom=kept.example"]
    res = env.send("alice@pass.test", helo="mail.pass.test", headers=forged)
    expect_accepted(res, env)
    msg = env.delivered(res)
    authres = msg.header("Authentication-Results")
    leaked = [v for v in authres if "forged-" in v]
    kept = [v for v in authres if v.startswith("other.example;")]
    if leaked:
        fail("forged Authentication-Results reached the recipient: %r" % leaked,
             res=res, env=env, extra="delivered copy:\n" + _indent(msg.text))
    if len(kept) != 1 or "smtp.mailfrom=kept.example" not in kept[0]:
        fail("Authentication-Results of other.example was not kept intact: %r"
             % authres, res=res, env=env, extra="delivered copy:\n" + _indent(msg.text))
    expect_one_authres(msg, spf_authres("pass", "mailfrom", "pass.test"), res, env)


def test_null_sender_is_checked_on_the_helo_identity(env):
    env.use_milter()
    res = env.send("<>", helo="mx1.helo.test", client=HELO_CLIENT)
    expect_accepted(res, env)
    msg = env.delivered(res)
    expect_one_authres(msg, spf_authres("pass", "helo", "mx1.helo.test"), res, env)


def test_milter_logs_exactly_one_summary_line_per_message(env):
    env.use_milter(reject_fail="yes")
    log_before = len(env.milter.log().splitlines())
    ok = env.send("alice@pass.test", helo="mail.pass.test")
    expect_accepted(ok, env)
    env.delivered(ok)
    bad = env.send("mallory@fail.test", helo="mail.fail.test")
    expect_reply(bad, 550, "5.7.23", env)
    qid_bad = None
    m = wait_for(lambda: re.search(r"postfix-test/\w+\[\d+\]: ([0-9A-F]+): "
                                   r"milter-reject: .*\[%s\]" % re.escape(bad.client),
                                   env.postfix.log()), 5)
    if m:
        qid_bad = m.group(1)
    time.sleep(0.3)  # the milter may write its line after replying
    new = env.milter.log().splitlines()[log_before:]
    summaries = [l for l in new if re.search(r"\baction=\w+", l)]
    for res, qid, spf, action in ((ok, ok.queue_id, "pass", "accept|add_header"),
                                  (bad, qid_bad, "fail", "reject")):
        mine = [l for l in summaries if res.client in l]
        if len(mine) != 1:
            fail("expected one summary line (with action=) for client %s, got %d"
                 % (res.client, len(mine)), res=res, env=env,
                 extra="new milter log lines:\n" + _indent("\n".join(new)))
        line = mine[0]
        missing = []
        if qid and qid not in line:
            missing.append("queue id %s" % qid)
        if not re.search(r"\bspf=%s\b" % spf, line):
            missing.append("spf=%s" % spf)
        if not re.search(r"\baction=(?:%s)\b" % action, line):
            missing.append("action=%s" % action)
        if missing:
            fail("summary line lacks %s: %r" % (", ".join(missing), line),
                 res=res, env=env)
    if len(summaries) != 2:
        fail("expected 2 summary lines for 2 messages, got %d" % len(summaries),
             env=env, extra="new milter log lines:\n" + _indent("\n".join(new)))


def test_milter_exits_cleanly_within_10s_of_sigterm(env):
    env.use_milter()
    milter = env.milter
    try:
        milter.stop(timeout=10)
    except MilterShutdownError as e:
        fail(str(e))
    finally:
        env.milter = None
        env.use_milter()
    if milter.returncode != 0:
        how = ("killed by signal %d instead of exiting" % -milter.returncode
               if milter.returncode < 0 else "exit status %d" % milter.returncode)
        fail("%s after SIGTERM (want exit status 0)" % how,
             extra="milter log:\n" + _indent(milter.log(), 25))


def test_postfix_answers_451_when_the_milter_is_down(env):
    env.use_milter()
    env.milter.stop()
    try:
        res = env.send("alice@pass.test", helo="mail.pass.test")
    finally:
        env.milter = None
        env.use_milter()
    expect_reply(res, 451, "4.7.1", env)
    if "milter" not in "\n".join(l for l in env.postfix.log().splitlines()
                                 if "[%s]" % res.client in l):
        fail("Postfix did not log a milter failure for this client", res=res, env=env)
    env.assert_not_delivered_nor_queued(res)


def test_dmarc_reject_failure_is_refused_with_550_5_7_1_and_not_delivered(env):
    env.use_milter()
    # SPF passes for pass.test, but nothing aligns with the From domain.
    msg = make_message(from_addr="ceo@dmarc-reject.test", to_addr=RCPT)
    res = env.send("mallory@pass.test", helo="mail.pass.test", message=msg)
    expect_reply(res, 550, "5.7.1", env)
    if res.final.stage != "DOT":
        fail("expected the refusal at end of DATA, got it at %s" % res.final.stage,
             res=res, env=env)
    if "dmarc-reject.test" not in res.final.text:
        fail("the 550 does not name the domain whose policy refused it: %r"
             % res.final.text, res=res, env=env)
    env.assert_not_delivered_nor_queued(res)


def test_dmarc_quarantine_failure_is_held_in_postfix_hold_queue_when_quarantine_is_hold(env):
    env.use_milter(dmarc_quarantine="hold")
    msg = make_message(from_addr="ceo@dmarc-quarantine.test", to_addr=RCPT)
    res = env.send("mallory@pass.test", helo="mail.pass.test", message=msg)
    try:
        expect_accepted(res, env)
        qid = res.queue_id
        held = wait_for(lambda: [m for m in env.postfix.queue()
                                 if m.get("queue_id") == qid
                                 and m.get("queue_name") == "hold"], 5, interval=0.2)
        if not held:
            fail("message %s is not in the hold queue; postqueue -j: %s"
                 % (qid, env.postfix.queue()), res=res, env=env)
        time.sleep(0.5)
        got = [m for m in env.sink.messages() if res.test_id in m.header("X-Test-Id")]
        if got:
            fail("held message was delivered anyway", res=res, env=env,
                 extra="delivered copy:\n" + _indent(got[0].text))
    finally:
        # leave the queue empty for the next tests
        env.postfix._run("/usr/sbin/postsuper", "-c", env.postfix.config_dir,
                         "-d", "ALL", "hold", check=False)


def test_dkim_pass_is_delivered_with_dkim_pass_in_authentication_results(env):
    env.use_milter()
    # dkimpy folds the DKIM-Signature field over several lines, as real
    # signers do; the milter gets it as Postfix and libmilter pass it on.
    msg = sign_dkimpy(make_message(from_addr="alice@%s" % DKIM_DOMAIN, to_addr=RCPT),
                      env.dkim_key, "relaxed/relaxed")
    b8 = re.search(rb"\bb=([^;]*)$", msg.split(b"\r\nFrom:")[0], re.S).group(1)
    b8 = re.sub(rb"\s", b"", b8)[:8].decode()
    # MAIL FROM another domain: DMARC can only pass through DKIM.
    res = env.send("bounce@pass.test", helo="mail.pass.test", message=msg)
    expect_accepted(res, env)
    delivered = env.delivered(res)
    value = lambda v: r'(?:%s|"%s")' % (re.escape(v), re.escape(v))
    ar = expect_one_authres(
        delivered, r"\bdkim=pass\b[^;]*\bheader\.d=%s[^;]*\bheader\.s=%s[^;]*\bheader\.b=%s"
        % (value(DKIM_DOMAIN), value(DKIM_SELECTOR), value(b8)), res, env)
    if not re.search(r"\bdmarc=pass \(p=reject dis=none\) header\.from=%s" % value(DKIM_DOMAIN),
                     re.sub(r"\s+", " ", ar)):
        fail("no 'dmarc=pass (p=reject dis=none) header.from=%s' in %r" % (DKIM_DOMAIN, ar),
             res=res, env=env)


SPAM_BODY = (
    "<html><body><p style=\"display:none\">hidden words</p>\n"
    "<p>EARN $5,000 PER WEEK FROM HOME! Act now, limited time offer. "
    "100% guaranteed, risk-free!</p>\n<p>$1,000 $2,000 $3,000</p>\n"
    "<a href=\"http://192.0.2.1/x\">click</a> <a href=\"https://bit.ly/abc\">here</a>\n"
    "<p>To be removed from this list reply with \"remove\" in the subject.</p>\n"
    "</body></html>\n")


def spam_message():
    msg = make_message(from_addr="deals12345@pass.test", to_addr=RCPT,
                       subject="MAKE MONEY FAST!!! $5000 per week",
                       body=SPAM_BODY)
    return msg.replace(b"Content-Type: text/plain; charset=us-ascii",
                       b"Content-Type: text/html; charset=us-ascii")


def test_spam_over_the_reject_threshold_is_refused_550_5_7_1(env):
    env.use_milter(actions={"reject": 10})
    res = env.send("deals12345@pass.test", helo="mail.pass.test",
                   message=spam_message())
    expect_reply(res, 550, "5.7.1", env)
    if "rejected as spam" not in res.final.text:
        fail("reply does not say why: %r" % res.final.text, res=res, env=env)
    env.assert_not_delivered_nor_queued(res)


def test_spam_between_add_header_and_reject_is_delivered_flagged(env):
    env.use_milter(actions={"reject": 100})
    res = env.send("deals12345@pass.test", helo="mail.pass.test",
                   message=spam_message())
    expect_accepted(res, env)
    copy = env.delivered(res)
    if copy.header("X-Spam-Flag") != ["YES"]:
        fail("no X-Spam-Flag: YES", res=res, env=env, extra=copy.text[:3000])
    status = " ".join(copy.header("X-Spam-Status"))
    if not status.startswith("Yes, score=") or "MXG_BODY_MONEY" not in status:
        fail("X-Spam-Status lacks the verdict: %r" % status, res=res, env=env)
    score = float(copy.header("X-Spam-Score")[0])
    if not 6 <= score < 100:
        fail("X-Spam-Score %r outside add_header..reject" % score, res=res, env=env)


def test_rewrite_subject_tags_the_delivered_subject(env):
    env.use_milter(actions={"reject": 100, "rewrite_subject": 8})
    res = env.send("deals12345@pass.test", helo="mail.pass.test",
                   message=spam_message())
    expect_accepted(res, env)
    subject = env.delivered(res).header("Subject")
    if subject != ["***SPAM*** MAKE MONEY FAST!!! $5000 per week"]:
        fail("Subject not rewritten: %r" % subject, res=res, env=env)


def test_client_on_a_dnsbl_is_refused_550_5_7_1_and_others_are_not(env):
    env.use_milter(dnsbl=True)
    msg = make_message(from_addr="alice@pass.test", to_addr=RCPT)
    res = env.send("alice@pass.test", helo="mail.pass.test",
                   client="192.0.2.250", message=msg)
    expect_reply(res, 550, "5.7.1", env)
    env.assert_not_delivered_nor_queued(res)
    if "DNSBL_TESTBL" not in env.milter.log():
        fail("the milter log does not name the list", res=res, env=env)
    res = env.send("alice@pass.test", helo="mail.pass.test",
                   message=make_message(from_addr="alice@pass.test", to_addr=RCPT))
    expect_accepted(res, env)
    if "DNSBL_TESTBL" in " ".join(env.delivered(res).header("X-Spam-Status")):
        fail("an unlisted client got the DNSBL symbol", res=res, env=env)


def test_clean_mail_is_delivered_with_x_spam_status_no(env):
    env.use_milter()
    res = env.send("alice@pass.test", helo="mail.pass.test",
                   message=make_message(from_addr="alice@pass.test", to_addr=RCPT))
    expect_accepted(res, env)
    copy = env.delivered(res)
    if not " ".join(copy.header("X-Spam-Status")).startswith("No, score="):
        fail("X-Spam-Status: %r" % copy.header("X-Spam-Status"), res=res, env=env)
    if copy.header("X-Spam-Flag"):
        fail("clean mail flagged", res=res, env=env)


TESTS = [
    test_spf_pass_is_delivered_with_authentication_results,
    test_spf_pass_adds_received_spf_pass_when_received_spf_is_yes,
    test_spf_pass_adds_no_received_spf_when_received_spf_is_no,
    test_spf_fail_is_refused_with_550_5_7_23_and_not_delivered_when_reject_fail_is_yes,
    test_refusal_text_reaches_the_client_as_the_milter_logged_it,
    test_spf_fail_is_delivered_with_spf_fail_when_reject_fail_is_no,
    test_spf_softfail_is_delivered_with_spf_softfail,
    test_dns_servfail_for_the_sender_domain_is_refused_with_451_4_4_3,
    test_dns_server_down_is_refused_with_451_4_4_3_when_on_error_is_tempfail,
    test_dns_server_down_is_delivered_with_spf_temperror_when_on_error_is_accept,
    test_forged_authentication_results_for_our_id_are_removed_and_others_kept,
    test_null_sender_is_checked_on_the_helo_identity,
    test_milter_logs_exactly_one_summary_line_per_message,
    test_milter_exits_cleanly_within_10s_of_sigterm,
    test_postfix_answers_451_when_the_milter_is_down,
    test_spam_over_the_reject_threshold_is_refused_550_5_7_1,
    test_spam_between_add_header_and_reject_is_delivered_flagged,
    test_rewrite_subject_tags_the_delivered_subject,
    test_clean_mail_is_delivered_with_x_spam_status_no,
    test_client_on_a_dnsbl_is_refused_550_5_7_1_and_others_are_not,
    test_dmarc_reject_failure_is_refused_with_550_5_7_1_and_not_delivered,
    test_dmarc_quarantine_failure_is_held_in_postfix_hold_queue_when_quarantine_is_hold,
    test_dkim_pass_is_delivered_with_dkim_pass_in_authentication_results,
]


# ---------------------------------------------------------------- runner

def main(argv):
    pattern, _, keep = parse_args(argv)
    return run_suite(Env(keep=keep), selected(TESTS, pattern), keep,
                     before_each=clear_sink)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
