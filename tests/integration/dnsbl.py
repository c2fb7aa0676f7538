#!/usr/bin/env python3
"""DNS lists through `mxguard check` against a real unbound serving the
list zones: client DNSBL (IPv4 and IPv6, per-code scores), URIBL on the
registered domains of the message's URIs, private clients never looked
up, a dead list server, bad [dnsbl NAME] sections.

Prints `ok - name` / `not ok - name: why`, then `N passed, M failed`.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
sys.dont_write_bytecode = True

from testrun import disabled, parse_args, run_suite, selected  # noqa: E402
from dnsserver import DnsServer  # noqa: E402

RECORDS = [
    # client DNSBL: 192.0.2.99 listed with two codes, 2001:db8::99 listed
    ("99.2.0.192.bl.test", "A", "127.0.0.2"),
    ("99.2.0.192.bl.test", "A", "127.0.0.10"),
    ("9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test", "A", "127.0.0.2"),
    # an answer outside 127/8 must be ignored
    ("77.2.0.192.bl.test", "A", "192.0.2.1"),
    # URIBL: example-spam.test listed (registered domain of a.b.example-spam.test)
    ("example-spam.test.dbl.test", "A", "127.0.1.2"),
]

BASE = """[milter]
authserv_id = mx.test
""" + disabled("spf", "dkim", "dmarc") + """[rules]
files = {root}/rules/*.rules
[dns]
nameserver = {ns}
timeout = 1s
on_error = accept
[dnsbl zen]
zone = bl.test
type = client
score = 1.5
codes = 127.0.0.2=3.0 127.0.0.10=5.0
[dnsbl dbl]
zone = dbl.test
type = uri
score = 2.5
"""

MSG = (b"From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <1@x.test>\r\n\r\nsee http://a.b.example-spam.test/x and http://clean.test/\r\n")

BIN = None


def check(conf, ip, message=MSG):
    d = tempfile.mkdtemp(prefix="mxg-dnsbl-")
    path = os.path.join(d, "c.conf")
    with open(path, "w") as f:
        f.write(conf)
    p = subprocess.run([BIN, "check", "-c", path, "--json", "--ip", ip, "-"], input=message,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stderr[-400:])
    assert b"Sanitizer" not in p.stderr and b"runtime error" not in p.stderr, p.stderr[-400:]
    return json.loads(p.stdout), p


def symbols(d):
    return {s["name"]: s for s in d["symbols"]}


class Env:
    """unbound serving RECORDS; .conf is BASE pointed at it."""

    def __init__(self):
        self.workdir = self.dns = self.conf = None

    def start(self):
        self.workdir = tempfile.mkdtemp(prefix="mxg-dnsbl-dns-")
        self.dns = DnsServer(self.workdir)
        self.dns.set_records(RECORDS)
        self.dns.start()
        self.conf = BASE.format(root=ROOT, ns=self.dns.address)
        return self

    def stop(self):
        if self.dns is not None:
            self.dns.stop()
        return []


# ---------------------------------------------------------------- tests

def listed_client_gets_the_best_code_score(env):
    d, _ = check(env.conf, "192.0.2.99")
    s = symbols(d)
    assert "DNSBL_ZEN" in s, s.keys()
    assert s["DNSBL_ZEN"]["score"] == 5.0, s["DNSBL_ZEN"]
    assert "127.0.0.10" in s["DNSBL_ZEN"]["detail"], s["DNSBL_ZEN"]


def listed_ipv6_client_is_found_by_nibbles(env):
    d, _ = check(env.conf, "2001:db8::99")
    assert symbols(d)["DNSBL_ZEN"]["score"] == 3.0, d["symbols"]


def unlisted_client_has_no_symbol(env):
    d, _ = check(env.conf, "192.0.2.98")
    assert "DNSBL_ZEN" not in symbols(d), d["symbols"]


def answer_outside_127_is_ignored(env):
    d, _ = check(env.conf, "192.0.2.77")
    assert "DNSBL_ZEN" not in symbols(d), d["symbols"]


def private_client_is_never_looked_up(env):
    for ip in ("10.1.2.3", "192.168.1.1", "172.16.0.1", "127.0.0.1", "fd00::1"):
        d, _ = check(env.conf + "[milter]\nloopback_trusted = no\n", ip)
        assert "DNSBL_ZEN" not in symbols(d), (ip, d["symbols"])


def uri_registered_domain_is_listed(env):
    d, _ = check(env.conf, "192.0.2.98")
    s = symbols(d)
    assert "URIBL_DBL" in s, s.keys()
    assert s["URIBL_DBL"]["score"] == 2.5 and "example-spam.test" in s["URIBL_DBL"]["detail"], s
    assert sum(1 for x in d["symbols"] if x["name"] == "URIBL_DBL") == 1


def scores_section_overrides_a_list_symbol(env):
    d, _ = check(env.conf + "[scores]\nURIBL_DBL = 7\n", "192.0.2.98")
    assert symbols(d)["URIBL_DBL"]["score"] == 7, d["symbols"]


def max_queries_caps_the_lookups(env):
    many = MSG + b"".join(b" http://d%d.example-spam%d.test/" % (i, i) for i in range(50))
    d, _ = check(env.conf + "[dnsbl]\nmax_queries = 1\n", "192.0.2.98", many)
    assert "URIBL_DBL" not in symbols(d), d["symbols"]


def disabled_section_makes_no_symbols(env):
    d, _ = check(env.conf + "[dnsbl]\nenabled = no\n", "192.0.2.99")
    assert not any(n.startswith(("DNSBL_", "URIBL_")) for n in symbols(d)), d["symbols"]


def dead_list_server_is_not_listed(env):
    """... and its failure is logged once."""
    dead = env.conf.replace(env.dns.address, "127.0.0.1@9")
    d, p = check(dead, "192.0.2.99")
    assert "DNSBL_ZEN" not in symbols(d), d["symbols"]
    assert p.stderr.count(b"dnsbl:") <= 1, p.stderr


def bad_dnsbl_sections_are_config_errors(env):
    rows = [("[dnsbl x]\ntype = client\n", "has no zone"),
            ("[dnsbl x]\nzone = a.test\ntype = ip\n", "not client or uri"),
            ("[dnsbl x]\nzone = a.test\ncodes = 127.0.0.2\n", "ADDRESS=SCORE"),
            ("[dnsbl x y]\nzone = a.test\n", "list name"),
            ("[dnsbl x]\nzone = a.test\nbogus = 1\n", "unknown key"),
            ("[dnsbl x]\nzone = a.test\nscore = lots\n", "not a number")]
    for text, want in rows:
        d = tempfile.mkdtemp(prefix="mxg-dnsbl-bad-")
        path = os.path.join(d, "c.conf")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([BIN, "lint", "-c", path], capture_output=True)
        assert p.returncode == 2 and want.encode() in p.stderr, (text, p.returncode, p.stderr)


TESTS = [
    listed_client_gets_the_best_code_score,
    listed_ipv6_client_is_found_by_nibbles,
    unlisted_client_has_no_symbol,
    answer_outside_127_is_ignored,
    private_client_is_never_looked_up,
    uri_registered_domain_is_listed,
    scores_section_overrides_a_list_symbol,
    max_queries_caps_the_lookups,
    disabled_section_makes_no_symbols,
    dead_list_server_is_not_listed,
    bad_dnsbl_sections_are_config_errors,
]


def main(argv):
    global BIN
    pattern, build, keep = parse_args(argv)
    BIN = os.path.join(ROOT, build, "mxguard")
    # mxguard check writes no daemon log: nothing to scan.
    return run_suite(Env(), selected(TESTS, pattern), keep, log_check=None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
