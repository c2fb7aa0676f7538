#!/usr/bin/python3
"""Metrics: the Prometheus endpoints of mxguard-milter and mxguard-policy.

USAGE
    /usr/bin/python3 tests/integration/metrics.py [--build DIR]
        [-k SUBSTRING] [--keep]

    One environment per run, all on loopback with private ports: unbound
    serving the test zones (tests/harness/dnsserver.py), Redis, smtp-sink
    as the next hop, mxguard-milter with [metrics] listen set, and a
    private Postfix with smtpd_milters pointing at it. Mail is sent with
    swaks through XCLIENT (TEST-NET clients, as in run.py).

    The text of GET /metrics is checked by `promtool check metrics`
    (Debian package prometheus) and read before and after each action to
    see what it added. One test starts a real `prometheus` (its own port,
    storage in the work directory, scrape_interval 1s, a job scraping the
    milter) and asks its HTTP API (/api/v1/query) for mxguard_messages_total
    after mail went through Postfix; it also runs every query of the
    Grafana dashboard (contrib/grafana/mxguard-dashboard.json) through
    that API, so each one parses and names only metrics the milter
    exports. A packaged prometheus service on 9090, if any, is never used.

    Each test prints "ok - NAME" or "not ok - NAME: REASON" (with "#"
    diagnostic lines after it); the last line is "N passed, M failed".
    After the daemons have stopped, their logs are searched for sanitizer
    reports (the ASan build: --build build-asan).

    --build DIR    use DIR/mxguard-milter and DIR/mxguard-policy (default build)
    -k SUBSTRING   run only the tests whose name contains SUBSTRING
    --keep         keep the work directory (it is kept anyway after a failure)
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

BUILD = "build"
if "--build" in sys.argv:
    BUILD = sys.argv[sys.argv.index("--build") + 1]
    os.environ["MXGUARD_MILTER"] = os.path.join(REPO_ROOT, BUILD,
                                                "mxguard-milter")

from testrun import (indent, parse_args, run_suite, selected,  # noqa: E402
                     stop_each, TestFailure)
from mta import (Milter, Postfix, Redis, SmtpSink, free_port, port_accepts,  # noqa: E402
                 swaks, tail, wait_for)

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
DASHBOARD = os.path.join(REPO_ROOT, "contrib", "grafana",
                         "mxguard-dashboard.json")
RCPT = "rcpt@dest.example"
GREYLISTED_NET = "198.51.100"   # every other client is on skip_networks

RECORDS = [
    ("pass.test", "TXT", "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"),
    ("fail.test", "TXT", "v=spf1 ip4:203.0.113.1 -all"),
    # REFUSED -> SERVFAIL in the milter's resolver: a DNS tempfail.
    ("temperror.test", "TIMEOUT", None),
]

# Every family lib/metrics.h promises.
FAMILIES = {
    "mxguard_build_info": "gauge",
    "mxguard_config_generation": "gauge",
    "mxguard_config_last_reload_success": "gauge",
    "mxguard_config_last_reload_timestamp_seconds": "gauge",
    "mxguard_connections_in_flight": "gauge",
    "mxguard_messages_total": "counter",
    "mxguard_policy_requests_total": "counter",
    "mxguard_check_results_total": "counter",
    "mxguard_symbol_hits_total": "counter",
    "mxguard_check_duration_seconds": "histogram",
    "mxguard_message_duration_seconds": "histogram",
    "mxguard_policy_request_duration_seconds": "histogram",
    "mxguard_dns_queries_total": "counter",
    "mxguard_dns_query_duration_seconds": "histogram",
    "mxguard_redis_commands_total": "counter",
    "mxguard_redis_command_duration_seconds": "histogram",
}


def milter_config(port, metrics_port, nameserver, redis_port, workdir):
    return """\
[milter]
socket = inet:{port}@127.0.0.1
user = root
authserv_id = mx.test.local
pidfile = {workdir}/milter.pid

[metrics]
listen = 127.0.0.1:{metrics_port}

[dns]
nameserver = {nameserver}
timeout = 2s
on_error = tempfail

[spf]
reject_fail = yes

[rules]
files = {root}/rules/*.rules

[redis]
server = 127.0.0.1:{redis_port}
connect_timeout = 300ms
command_timeout = 500ms

[greylist]
enabled = yes
delay = 1h
skip_networks = 192.0.2.0/24 203.0.113.0/24
on_error = accept
""".format(port=port, metrics_port=metrics_port, nameserver=nameserver,
           redis_port=redis_port, workdir=workdir, root=REPO_ROOT)


def policy_config(port, metrics_spec, nameserver, redis_port):
    return """\
[milter]
user = root

[metrics]
policy_listen = {metrics_spec}

[policy]
listen = inet:{port}@127.0.0.1
allow = 127.0.0.0/8

[dns]
nameserver = {nameserver}
timeout = 2s

[redis]
server = 127.0.0.1:{redis_port}
connect_timeout = 300ms
command_timeout = 500ms

[greylist]
enabled = yes
delay = 1h
skip_networks = 192.0.2.0/24
""".format(port=port, metrics_spec=metrics_spec, nameserver=nameserver,
           redis_port=redis_port)


# ---------------------------------------------------------------- exposition

class Exposition:
    """The text of one GET /metrics: .text, .types {family: type} and
    .samples {'name{labels}': value} (label text as the server wrote it)."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.samples = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
            elif line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                self.samples[series] = float(value)

    def value(self, series, default=0.0):
        return self.samples.get(series, default)

    def names(self):
        """Every sample name (no labels)."""
        return {s.split("{", 1)[0] for s in self.samples}

    def total(self, name):
        """Sum of every series of one name (all label values)."""
        return sum(v for s, v in self.samples.items()
                   if s == name or s.startswith(name + "{"))


def fetch(port, path="/metrics", host="127.0.0.1", timeout=5):
    """(status, headers, body text) of one GET."""
    url = "http://%s:%d%s" % (host if ":" not in host else "[%s]" % host,
                              port, path)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")


def scrape(port, host="127.0.0.1"):
    status, _, body = fetch(port, host=host)
    if status != 200:
        fail("GET /metrics answered %d: %s" % (status, body[:300]))
    return Exposition(body)


def promtool_check(text):
    """promtool check metrics: (exit status, its output)."""
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    return p.returncode, p.stdout


# ---------------------------------------------------------------- environment

class _Daemon:
    """A child started with its output in .log_path: log() reads that,
    stop() sends SIGTERM, kills after stop_timeout seconds and returns
    the exit status (None when never started)."""

    stop_timeout = 10

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode if self.proc else None


class PolicyServer(_Daemon):
    """mxguard-policy -f -c FILE, output in <workdir>/policy-N.log."""

    _count = 0

    def __init__(self, workdir, config_text):
        PolicyServer._count += 1
        n = PolicyServer._count
        self.binary = os.path.join(REPO_ROOT, BUILD, "mxguard-policy")
        self.config_path = os.path.join(workdir, "policy-%d.conf" % n)
        self.log_path = os.path.join(workdir, "policy-%d.log" % n)
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.proc = None

    def start(self, port):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-f", "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        if not wait_for(lambda: self.proc.poll() is not None
                        or port_accepts(port), 10) or self.proc.poll() is not None:
            self.stop()
            raise AssertionError("mxguard-policy did not start:\n%s"
                                 % tail(self.log_path))
        return self


class Prometheus(_Daemon):
    """A private prometheus: its own port, storage and config in workdir."""

    stop_timeout = 20

    def __init__(self, workdir, targets):
        self.dir = os.path.join(workdir, "prometheus")
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        self.port = free_port()
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        self.log_path = os.path.join(self.dir, "prometheus.log")
        jobs = "".join("""\
  - job_name: {job}
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["{target}"]
""".format(job=job, target=target) for job, target in targets)
        with open(self.config_path, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n" + jobs)
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + self.config_path,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        ready = wait_for(lambda: self.proc.poll() is not None
                         or self._ready(), 60, interval=0.2)
        if self.proc.poll() is not None or not ready:
            self.stop()
            raise AssertionError("prometheus did not become ready on port "
                                 "%d:\n%s" % (self.port, tail(self.log_path)))
        return self

    def _ready(self):
        try:
            return fetch(self.port, "/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def query(self, expr):
        """The API's answer to an instant query, as parsed JSON."""
        status, _, body = fetch(self.port, "/api/v1/query?" +
                                urllib.parse.urlencode({"query": expr}))
        try:
            answer = json.loads(body)
        except ValueError:
            raise AssertionError("query %r: HTTP %d, not JSON: %s"
                                 % (expr, status, body[:300]))
        return answer


class Env:
    def __init__(self, keep=False):
        self.keep = keep
        self.workdir = None
        self.dns = self.redis = self.sink = self.milter = self.postfix = None
        self.prometheus = None
        self.policies = []
        self._client = 10
        self._seq = 0

    def start(self):
        from dnsserver import DnsServer
        self.workdir = tempfile.mkdtemp(prefix="mxguard-metrics-")
        os.chmod(self.workdir, 0o755)
        self.dns = DnsServer(os.path.join(self.workdir, "dns"))
        self.dns.set_records(RECORDS)
        self.dns.start()
        self.redis = Redis(self.workdir).start()
        self.sink = SmtpSink(self.workdir).start()
        self.milter_port = free_port()
        self.metrics_port = free_port()
        self.milter = Milter(self.workdir, milter_config(
            self.milter_port, self.metrics_port, self.dns.address,
            self.redis.port, self.workdir))
        self.milter.start()
        if not wait_for(lambda: port_accepts(self.metrics_port), 10):
            raise AssertionError("the milter does not listen on its metrics "
                                 "port %d:\n%s" % (self.metrics_port,
                                                   self.milter.log()))
        self.postfix = Postfix(self.workdir, "inet:127.0.0.1:%d" % self.milter_port,
                               self.sink.port, sink=self.sink).start()
        return self

    def stop(self):
        errors = stop_each((name, getattr(self, name)) for name in
                           ("prometheus", "postfix", "milter", "sink",
                            "redis", "dns"))
        for p in self.policies:
            p.stop()
        return errors

    def client(self, net="192.0.2"):
        self._client += 1
        return "%s.%d" % (net, self._client)

    def send(self, mail_from, client=None, helo="mail.client.example"):
        self._seq += 1
        client = client or self.client()
        res = swaks(self.postfix.port, mail_from, RCPT, helo=helo,
                    xclient_addr=client, xclient_name="host.example",
                    headers=["X-Test-Id: m%d-%d" % (os.getpid(), self._seq)],
                    timeout=30)
        res.client = client
        return res

    def scrape(self):
        return scrape(self.metrics_port)


# ---------------------------------------------------------------- assertions

def fail(reason, res=None, env=None, extra=None):
    parts = [reason]
    if res is not None:
        parts.append("swaks exit %s, decisive reply: %s\nswaks transcript:\n%s"
                     % (res.rc, res.final, indent(res.transcript, 25)))
    if extra:
        parts.append(extra)
    if env is not None and env.milter is not None:
        parts.append("milter log (%s):\n%s" % (env.milter.log_path,
                                               indent(env.milter.log(), 20)))
    raise TestFailure("\n".join(parts))


def expect_code(res, code, env):
    if res.final is None or res.final.code != code:
        fail("expected %d, got %s" % (code, res.final), res=res, env=env)


def expect_delta(before, after, series, want, env=None, at_least=False):
    got = after.value(series) - before.value(series)
    if (got < want) if at_least else (got != want):
        fail("%s grew by %g, want %s%g" % (series, got,
                                           ">= " if at_least else "", want),
             env=env, extra="after:\n" + indent("\n".join(
                 l for l in after.text.splitlines()
                 if l.startswith(series.split("{")[0])), 30))


def wait_value(env, series, want, timeout=5):
    """Polls /metrics until series equals want; the last exposition."""
    last = [None]

    def check():
        last[0] = env.scrape()
        return last[0].value(series, None) == want
    if not wait_for(check, timeout, interval=0.1):
        fail("%s is %s, want %s" % (series, last[0].value(series, None), want),
             env=env)
    return last[0]


def dashboard_exprs():
    """Every PromQL expression in the Grafana dashboard: panel targets,
    annotations and template variable queries."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = []
    for p in dash.get("panels", []):
        for sub in [p] + p.get("panels", []):
            for t in sub.get("targets", []):
                if t.get("expr"):
                    exprs.append(("panel %r" % sub.get("title"), t["expr"]))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            exprs.append(("annotation %r" % a.get("name"), a["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if isinstance(q, str) and "mxguard_" in q:
            exprs.append(("variable %r" % v.get("name"), q))
    return dash, exprs


def grafana_to_promql(expr):
    """What Grafana would send: its variables replaced by values."""
    m = re.match(r"^label_values\((.*),\s*(\w+)\)$", expr)
    if m:   # a variable query: the series it lists values from
        expr = m.group(1)
    for var, value in (("$__rate_interval", "10s"), ("$__range", "5m"),
                       ("$__interval", "1s"), ("$job", ".*"),
                       ("$instance", ".*")):
        expr = expr.replace(var, value)
    return expr


# ---------------------------------------------------------------- tests

def test_milter_metrics_text_passes_promtool_check_metrics(env):
    # after some mail, so that labelled families have series too
    expect_code(env.send("alice@pass.test"), 250, env)
    status, headers, body = fetch(env.metrics_port)
    if status != 200:
        fail("GET /metrics: %d" % status, env=env)
    ctype = headers.get("Content-Type", "")
    if not ctype.startswith("text/plain") or "version=0.0.4" not in ctype:
        fail("Content-Type %r is not the text format 0.0.4" % ctype, env=env)
    rc, out = promtool_check(body)
    if rc != 0 or out.strip():
        fail("promtool check metrics: exit %d:\n%s" % (rc, indent(out)),
             env=env, extra="text:\n" + indent(body, 60))
    expo = Exposition(body)
    missing = [f for f, kind in FAMILIES.items() if expo.types.get(f) != kind]
    if missing:
        fail("families missing or of the wrong type: %s" % missing, env=env)
    if 'mxguard_build_info{version="' not in body or \
            'daemon="milter"} 1' not in body:
        fail("no mxguard_build_info{...,daemon=\"milter\"} 1", env=env)


def test_other_paths_are_404_and_other_methods_405(env):
    status, _, _ = fetch(env.metrics_port, "/")
    if status != 404:
        fail("GET / answered %d, want 404" % status, env=env)
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % env.metrics_port,
                                 data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    if status != 405:
        fail("POST /metrics answered %d, want 405" % status, env=env)


def test_config_generation_is_1_and_the_load_succeeded_at_start(env):
    expo = env.scrape()
    for series, want in (("mxguard_config_generation", 1),
                         ("mxguard_config_last_reload_success", 1)):
        if expo.value(series, None) != want:
            fail("%s is %s, want %s" % (series, expo.value(series, None), want),
                 env=env)
    ts = expo.value("mxguard_config_last_reload_timestamp_seconds")
    if not time.time() - 3600 < ts <= time.time() + 1:
        fail("last reload timestamp %s is not about now" % ts, env=env)


def test_an_accepted_message_counts_its_action_spf_result_and_times(env):
    before = env.scrape()
    res = env.send("alice@pass.test")
    expect_code(res, 250, env)
    after = wait_value(env, "mxguard_messages_total{action=\"accept\"}",
                       before.value("mxguard_messages_total{action=\"accept\"}")
                       + 1)
    expect_delta(before, after, 'mxguard_check_results_total{check="spf",'
                 'result="pass"}', 1, env)
    expect_delta(before, after, 'mxguard_check_results_total{check="greylist",'
                 'result="skip"}', 1, env)
    expect_delta(before, after, 'mxguard_check_results_total{check="dkim",'
                 'result="none"}', 1, env)
    expect_delta(before, after, "mxguard_message_duration_seconds_count", 1, env)
    expect_delta(before, after, 'mxguard_check_duration_seconds_count'
                 '{check="spf"}', 1, env)
    expect_delta(before, after, 'mxguard_symbol_hits_total{symbol="SPF_PASS"}',
                 1, env)
    if after.total("mxguard_messages_total") - \
            before.total("mxguard_messages_total") != 1:
        fail("one message counted more than once", env=env)


def test_an_spf_reject_counts_as_reject(env):
    before = env.scrape()
    res = env.send("mallory@fail.test", client=env.client("203.0.113"))
    expect_code(res, 550, env)
    after = wait_value(env, 'mxguard_messages_total{action="reject"}',
                       before.value('mxguard_messages_total{action="reject"}')
                       + 1)
    expect_delta(before, after, 'mxguard_check_results_total{check="spf",'
                 'result="fail"}', 1, env)


def test_greylisting_counts_a_defer_and_a_redis_command(env):
    before = env.scrape()
    res = env.send("bob@pass.test", client=env.client(GREYLISTED_NET))
    expect_code(res, 451, env)
    after = wait_value(env, 'mxguard_check_results_total{check="greylist",'
                       'result="defer"}', before.value(
                           'mxguard_check_results_total{check="greylist",'
                           'result="defer"}') + 1)
    expect_delta(before, after, 'mxguard_redis_commands_total{status="ok"}', 1,
                 env, at_least=True)
    expect_delta(before, after, "mxguard_redis_command_duration_seconds_count",
                 1, env, at_least=True)


def test_a_dns_servfail_counts_a_dns_tempfail(env):
    before = env.scrape()
    res = env.send("carol@temperror.test", client=env.client("203.0.113"))
    expect_code(res, 451, env)
    after = wait_value(env, 'mxguard_messages_total{action="tempfail"}',
                       before.value('mxguard_messages_total{action="tempfail"}')
                       + 1)
    expect_delta(before, after, 'mxguard_dns_queries_total{status="tempfail"}',
                 1, env, at_least=True)
    expect_delta(before, after, "mxguard_dns_query_duration_seconds_count", 1,
                 env, at_least=True)


def test_redis_down_counts_redis_errors(env):
    before = env.scrape()
    env.redis.stop()
    try:
        res = env.send("dave@pass.test", client=env.client(GREYLISTED_NET))
    finally:
        env.redis.start()
    expect_code(res, 250, env)  # [greylist] on_error = accept
    after = env.scrape()
    expect_delta(before, after, 'mxguard_redis_commands_total{status="error"}',
                 1, env, at_least=True)
    expect_delta(before, after, 'mxguard_check_results_total{check="greylist",'
                 'result="error"}', 1, env)
    time.sleep(1.1)  # past the pool's fail-fast second


def test_connections_in_flight_follows_an_smtp_session(env):
    base = env.scrape().value("mxguard_connections_in_flight")
    s = socket.create_connection(("127.0.0.1", env.postfix.port), timeout=10)
    try:
        f = s.makefile("rb")
        f.readline()                          # banner: Postfix asked the milter
        s.sendall(b"EHLO metrics.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        wait_value(env, "mxguard_connections_in_flight", base + 1)
        s.sendall(b"QUIT\r\n")
        f.readline()
    finally:
        s.close()
    wait_value(env, "mxguard_connections_in_flight", base)


def test_milter_refuses_to_start_when_its_metrics_port_is_taken(env):
    text = milter_config(free_port(), env.metrics_port, env.dns.address,
                         env.redis.port, env.workdir).replace(
        "pidfile = %s/milter.pid" % env.workdir,
        "pidfile = %s/milter-busy.pid" % env.workdir)
    path = os.path.join(env.workdir, "milter-busy.conf")
    with open(path, "w") as f:
        f.write(text)
    binary = os.environ.get("MXGUARD_MILTER",
                            os.path.join(REPO_ROOT, "build", "mxguard-milter"))
    p = subprocess.run([binary, "-f", "-c", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=20)
    with open(os.path.join(env.workdir, "milter-busy.log"), "w") as f:
        f.write(p.stdout)
    if p.returncode == 0:
        fail("a second milter on metrics port %d exited 0" % env.metrics_port,
             extra=p.stdout)
    if "metrics: cannot listen on 127.0.0.1:%d" % env.metrics_port \
            not in p.stdout or "in use" not in p.stdout:
        fail("no 'metrics: cannot listen ... in use' line", extra=p.stdout)


def test_policy_server_serves_requests_by_action_on_its_own_port(env):
    port, mport = free_port(), free_port()
    policy = PolicyServer(env.workdir, policy_config(
        port, "[::1]:%d" % mport, env.dns.address, env.redis.port))
    env.policies.append(policy)
    policy.start(port)
    before = scrape(mport, host="::1")
    if 'daemon="policy"} 1' not in before.text:
        fail("build_info does not say daemon=\"policy\"",
             extra=indent(before.text, 10))

    def request(client, state="RCPT", n=[0]):
        n[0] += 1
        return ("request=smtpd_access_policy\nprotocol_state=%s\n"
                "protocol_name=ESMTP\nclient_address=%s\n"
                "client_name=host.example\nhelo_name=mail.pass.test\n"
                "sender=alice@pass.test\nrecipient=%s\n"
                "instance=%x.%d\n\n" % (state, client, RCPT, os.getpid(), n[0]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        answers = []
        for data in (request("192.0.2.77"), request(GREYLISTED_NET + ".77"),
                     request("192.0.2.78", state="DATA")):
            s.sendall(data.encode())
            answers.append(f.readline().decode().strip())
            f.readline()
        during = scrape(mport, host="::1")
    after = scrape(mport, host="::1")
    want = [("action=DUNNO", "dunno"), ("action=DEFER_IF_PERMIT", "defer_if_permit"),
            ("action=DUNNO", "dunno")]
    for got, (prefix, _) in zip(answers, want):
        if not got.startswith(prefix):
            fail("policy answers %r, want %r" % (answers, [w for w, _ in want]),
                 extra=policy.log())
    expect_delta(before, after, 'mxguard_policy_requests_total{action="dunno"}', 2)
    expect_delta(before, after,
                 'mxguard_policy_requests_total{action="defer_if_permit"}', 1)
    expect_delta(before, after, "mxguard_policy_request_duration_seconds_count", 2)
    expect_delta(before, after, 'mxguard_check_results_total{check="spf",'
                 'result="pass"}', 2)
    if during.value("mxguard_connections_in_flight") != 1:
        fail("connections_in_flight %s while one policy connection is open"
             % during.value("mxguard_connections_in_flight"))
    if after.value("mxguard_messages_total{action=\"accept\"}") != 0:
        fail("the policy server counted messages")
    rc, out = promtool_check(after.text)
    if rc != 0 or out.strip():
        fail("promtool check metrics (policy): exit %d:\n%s" % (rc, out))
    if policy.stop() != 0:
        fail("mxguard-policy did not exit 0 on SIGTERM", extra=policy.log())
    if port_accepts(mport, host="::1"):
        fail("the metrics port still accepts after the policy server stopped")


def test_policy_server_refuses_to_start_when_its_metrics_port_is_taken(env):
    port = free_port()
    policy = PolicyServer(env.workdir, policy_config(
        port, "127.0.0.1:%d" % env.metrics_port, env.dns.address,
        env.redis.port))
    p = subprocess.run([policy.binary, "-f", "-c", policy.config_path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=20)
    with open(policy.log_path, "w") as f:
        f.write(p.stdout)
    if p.returncode == 0 or "metrics: cannot listen" not in p.stdout:
        fail("exit %d; want non-zero and 'metrics: cannot listen'"
             % p.returncode, extra=p.stdout)


def test_grafana_dashboard_is_json_and_names_only_exported_metrics(env):
    dash, exprs = dashboard_exprs()
    if not exprs or dash.get("title") != "mxguard":
        fail("the dashboard has no queries or no title")
    exported = env.scrape().names()
    used = set()
    for where, expr in exprs:
        for name in re.findall(r"\bmxguard_[a-z_]+", expr):
            used.add(name)
            if name not in exported:
                fail("%s uses %s, which the milter does not export (%s)"
                     % (where, name, expr))
    families = {re.sub(r"_(bucket|sum|count)$", "", n) if
                FAMILIES.get(re.sub(r"_(bucket|sum|count)$", "", n)) ==
                "histogram" else n for n in used}
    unused = sorted(set(FAMILIES) - families)
    if unused:
        fail("families no dashboard panel shows: %s" % unused)


def test_prometheus_scrapes_the_milter_and_answers_for_mxguard_messages_total(env):
    env.prometheus = Prometheus(env.workdir, [
        ("mxguard-milter", "127.0.0.1:%d" % env.metrics_port)]).start()
    prom = env.prometheus
    for _ in range(2):
        expect_code(env.send("erin@pass.test"), 250, env)
    want = wait_value(env, 'mxguard_messages_total{action="accept"}',
                      env.scrape().value('mxguard_messages_total{action="accept"}'))
    want = want.value('mxguard_messages_total{action="accept"}')
    last = [None]

    def scraped():
        last[0] = prom.query('mxguard_messages_total{job="mxguard-milter",'
                             'action="accept"}')
        r = last[0].get("data", {}).get("result", [])
        return len(r) == 1 and float(r[0]["value"][1]) == want
    if not wait_for(scraped, 30, interval=0.5):
        fail("prometheus: mxguard_messages_total{action=\"accept\"} is not %g"
             % want, extra="last answer: %s\nprometheus log:\n%s"
             % (json.dumps(last[0])[:1000], indent(prom.log(), 20)))
    up = prom.query('up{job="mxguard-milter"}')
    if [float(r["value"][1]) for r in up["data"]["result"]] != [1.0]:
        fail("up{job=\"mxguard-milter\"}: %s" % json.dumps(up)[:500])
    # Every dashboard query parses and runs on the scraped data.
    time.sleep(2)   # a few scrapes, so that rate() has two points
    _, exprs = dashboard_exprs()
    for where, expr in exprs:
        answer = prom.query(grafana_to_promql(expr))
        if answer.get("status") != "success":
            fail("%s: %s\nprometheus: %s" % (where, expr,
                                              json.dumps(answer)[:500]))
    r = prom.query(grafana_to_promql(
        'sum by (action) (rate(mxguard_messages_total{job=~"$job",'
        'instance=~"$instance"}[1m]))'))["data"]["result"]
    if not any(x["metric"].get("action") == "accept" for x in r):
        fail("the dashboard's messages-by-action query returns no accept "
             "series: %s" % json.dumps(r)[:500])


TESTS = [
    test_milter_metrics_text_passes_promtool_check_metrics,
    test_other_paths_are_404_and_other_methods_405,
    test_config_generation_is_1_and_the_load_succeeded_at_start,
    test_an_accepted_message_counts_its_action_spf_result_and_times,
    test_an_spf_reject_counts_as_reject,
    test_greylisting_counts_a_defer_and_a_redis_command,
    test_a_dns_servfail_counts_a_dns_tempfail,
    test_connections_in_flight_follows_an_smtp_session,
    test_milter_refuses_to_start_when_its_metrics_port_is_taken,
    test_policy_server_serves_requests_by_action_on_its_own_port,
    test_policy_server_refuses_to_start_when_its_metrics_port_is_taken,
    test_grafana_dashboard_is_json_and_names_only_exported_metrics,
    test_prometheus_scrapes_the_milter_and_answers_for_mxguard_messages_total,
    test_redis_down_counts_redis_errors,
]


# ---------------------------------------------------------------- runner

def main(argv):
    pattern, _, keep = parse_args(argv)
    return run_suite(Env(keep=keep), selected(TESTS, pattern), keep,
                     log_check=("daemon_logs_have_no_sanitizer_reports",
                                ("milter", "policy")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
