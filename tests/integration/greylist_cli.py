#!/usr/bin/python3
"""`mxguard greylist` against a real redis-server, its state driven by
`mxguard check --rcpt`, which greylists exactly as the milter does.

USAGE
    /usr/bin/python3 tests/integration/greylist_cli.py [--build DIR] [-k SUBSTRING]

    One redis-server on a free loopback port (tests/harness/mta.py), flushed
    before each test. `mxguard check` runs with SPF, DKIM and DMARC off and
    a nameserver that does not exist, so no DNS is needed. Every subcommand
    is checked in its human and its JSON form; bad input must exit 2 with a
    message, an unreachable Redis exit 1 with a message. Any sanitizer
    report on stderr (ASan build) fails the test that caused it.

    Prints "ok - NAME" or "not ok - NAME: REASON", then "N passed, M failed".
    --build DIR uses DIR/mxguard (default build; the ASan build: build-asan).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))

from mta import Redis, free_port  # noqa: E402

BIN = os.path.join(ROOT, "build", "mxguard")
WORK = None
REDIS = None
DELAY = 2          # [greylist] delay, seconds
AWL = 2            # [greylist] auto_whitelist
RETRY_WINDOW = 3600
MAX_AGE = 86400
MSG = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
SANITIZER = re.compile(r"Sanitizer|runtime error:|SUMMARY: ")


def config(prefix="mxg:", port=None, auto_whitelist=AWL, extra=""):
    return """\
[milter]
authserv_id = mx.test.local
[dns]
nameserver = 127.0.0.1@9
timeout = 300ms
[spf]
enabled = no
[dkim]
enabled = no
[dmarc]
enabled = no
[redis]
server = 127.0.0.1:{port}
prefix = {prefix}
connect_timeout = 500ms
command_timeout = 1s
[greylist]
enabled = yes
delay = {delay}s
retry_window = {window}s
max_age = {max_age}s
auto_whitelist = {awl}
skip_recipients = postmaster@
{extra}
""".format(port=port or REDIS.port, prefix=prefix, delay=DELAY,
           window=RETRY_WINDOW, max_age=MAX_AGE, awl=auto_whitelist,
           extra=extra)


def write_config(text, name="greylist.conf"):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Run:
    def __init__(self, argv, p):
        self.argv = argv
        self.rc = p.returncode
        self.out = p.stdout.decode(errors="replace")
        self.err = p.stderr.decode(errors="replace")

    def __str__(self):
        return "`%s` exit %d\nstdout: %s\nstderr: %s" % (
            " ".join(self.argv[1:]), self.rc, self.out[-1500:], self.err[-1500:])


def mxguard(*args, conf=None, stdin=b""):
    conf = conf or write_config(config())
    argv = [BIN] + list(args[:1]) + (["-c", conf] if args else []) + list(args[1:])
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=60)
    r = Run(argv, p)
    if SANITIZER.search(r.err):
        raise AssertionError("sanitizer report:\n%s" % r.err[-3000:])
    return r


def greylist(*args, conf=None):
    """`mxguard greylist -c CONF args...`"""
    return mxguard("greylist", *args, conf=conf)


def ok(r):
    assert r.rc == 0, "want exit 0: %s" % r
    return r


def ok_json(r):
    ok(r)
    try:
        return json.loads(r.out)
    except json.JSONDecodeError as e:
        raise AssertionError("not JSON (%s): %s" % (e, r))


def usage_error(r, *needles):
    assert r.rc == 2, "want exit 2: %s" % r
    assert r.out == "", "stdout not empty: %s" % r
    for n in needles:
        assert n in r.err, "stderr lacks %r: %s" % (n, r)


def check(ip, sender, rcpts, conf=None):
    """`mxguard check --json` for one transaction: the refused recipients
    (address -> reply) and the symbol names."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    args = ["check", "--json", "--ip", ip, "--helo", "mail.example.org",
            "--from", sender]
    for r in rcpts:
        args += ["--rcpt", r]
    d = ok_json(mxguard(*args, "-", conf=conf, stdin=MSG))
    refused = {x["address"]: x["reply"] for x in d["refused_recipients"]}
    return refused, [s["name"] for s in d["symbols"]]


def deferred(ip, sender, rcpt, conf=None):
    refused, symbols = check(ip, sender, rcpt, conf)
    bare = rcpt.strip("<>")
    assert bare in refused and refused[bare].startswith("451 4.7.1 Greylisted"), \
        "want %s deferred, got refused=%r symbols=%r" % (rcpt, refused, symbols)
    return refused[bare]


def passed(ip, sender, rcpt, conf=None, symbol="GREYLIST_PASS"):
    refused, symbols = check(ip, sender, rcpt, conf)
    assert not refused, "want %s accepted, got refused=%r" % (rcpt, refused)
    assert symbol in symbols, "want %s in %r" % (symbol, symbols)


def redis_pipeline(commands):
    """Sends commands (lists of str) to the test Redis in one pipeline and
    reads as many replies (the first line of each)."""
    buf = bytearray()
    for args in commands:
        buf += b"*%d\r\n" % len(args)
        for a in args:
            b = str(a).encode()
            buf += b"$%d\r\n%s\r\n" % (len(b), b)
    with socket.create_connection(("127.0.0.1", REDIS.port), timeout=10) as s:
        s.sendall(buf)
        data = b""
        while data.count(b"\r\n") < len(commands):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n")[:len(commands)]


def pass_triplet(ip, sender, rcpt, conf=None):
    """Makes a triplet pass the way a retrying MTA does: defer, wait out
    the delay, retry."""
    deferred(ip, sender, rcpt, conf)
    time.sleep(DELAY + 0.1)
    passed(ip, sender, rcpt, conf)


# ---------------------------------------------------------------- tests

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def test_show_says_not_found_for_an_unknown_triplet_and_exits_0():
    r = ok(greylist("show", "--ip", "192.0.2.1", "--from", "a@example.org",
                    "--rcpt", "b@example.net"))
    assert "not found" in r.out, r
    assert "client network: 192.0.2.0/24" in r.out and "passed triplets: 0" in r.out, r
    d = ok_json(greylist("show", "--json", "--ip", "192.0.2.1", "--from",
                         "a@example.org", "--rcpt", "b@example.net"))
    assert d["triplet"] is None, d
    assert d["key"] == "mxg:gl:t:192.0.2.0/24|a@example.org|b@example.net", d
    assert d["client_net"] == "192.0.2.0/24" and d["passed"] == 0, d
    assert d["whitelisted"] is False and d["auto_whitelist"] == AWL, d
    assert d["client_ttl"] is None, d


@test
def test_show_reports_a_deferred_triplet_with_the_seconds_left():
    reply = deferred("192.0.2.10", "alice@example.org", "bob@example.net")
    assert reply == "451 4.7.1 Greylisted, try again in %d seconds" % DELAY, reply
    d = ok_json(greylist("show", "--json", "--ip", "192.0.2.10", "--from",
                         "alice@example.org", "--rcpt", "bob@example.net"))
    t = d["triplet"]
    assert t is not None, d
    assert t["state"] == "wait" and t["seen"] == 1 and t["last"] is None, t
    assert 0 < t["seconds_left"] <= DELAY, t
    assert RETRY_WINDOW - 5 <= t["ttl"] <= RETRY_WINDOW, t
    assert abs(t["first"] - time.time()) < 60, t
    assert (t["client_net"], t["sender"], t["rcpt"]) == \
        ("192.0.2.0/24", "alice@example.org", "bob@example.net"), t
    r = ok(greylist("show", "--ip", "192.0.2.10", "--from", "alice@example.org",
                    "--rcpt", "bob@example.net"))
    assert "state: wait" in r.out and "seen: 1" in r.out, r
    m = re.search(r"^passes in: (\d+) s$", r.out, re.M)
    assert m and 0 <= int(m.group(1)) <= DELAY, r
    assert "not found" not in r.out, r


@test
def test_a_retry_before_the_delay_counts_as_seen_and_time_left_does_not_grow():
    first = deferred("192.0.2.11", "a@example.org", "b@example.net")
    second = deferred("192.0.2.11", "a@example.org", "b@example.net")
    n1 = int(re.search(r"in (\d+) seconds", first).group(1))
    n2 = int(re.search(r"in (\d+) seconds", second).group(1))
    assert n2 <= n1, (first, second)
    d = ok_json(greylist("show", "--json", "--ip", "192.0.2.11", "--from",
                         "a@example.org", "--rcpt", "b@example.net"))
    assert d["triplet"]["seen"] == 2 and d["triplet"]["state"] == "wait", d


@test
def test_show_reports_pass_and_the_client_count_after_a_retry_past_the_delay():
    pass_triplet("192.0.2.12", "a@example.org", "b@example.net")
    d = ok_json(greylist("show", "--json", "--ip", "192.0.2.12", "--from",
                         "a@example.org", "--rcpt", "b@example.net"))
    t = d["triplet"]
    assert t["state"] == "pass" and t["seen"] == 2 and t["seconds_left"] == 0, t
    assert t["last"] is not None and t["last"] >= t["first"] + DELAY, t
    assert MAX_AGE - 5 <= t["ttl"] <= MAX_AGE, t
    assert d["passed"] == 1 and d["whitelisted"] is False, d
    assert MAX_AGE - 5 <= d["client_ttl"] <= MAX_AGE, d
    r = ok(greylist("show", "--ip", "192.0.2.12", "--from", "a@example.org",
                    "--rcpt", "b@example.net"))
    assert "state: pass" in r.out and "passed triplets: 1" in r.out, r
    assert "auto-whitelisted: no" in r.out, r


@test
def test_sender_and_recipient_are_keyed_as_the_milter_keys_them():
    deferred("192.0.2.13", "Alice+news@Example.ORG", "<Bob@Example.NET>")
    for sender, rcpt in (("alice@example.org", "bob@example.net"),
                         ("<Alice+other@EXAMPLE.org>", "BOB@example.net")):
        d = ok_json(greylist("show", "--json", "--ip", "192.0.2.200",
                             "--from", sender, "--rcpt", rcpt))
        assert d["triplet"] is not None, (sender, rcpt, d)
        assert d["sender"] == "alice@example.org" and d["rcpt"] == "bob@example.net", d


@test
def test_the_null_sender_is_shown_as_angle_brackets():
    deferred("192.0.2.14", "<>", "b@example.net")
    for sender in ("<>", ""):
        d = ok_json(greylist("show", "--json", "--ip", "192.0.2.14", "--from",
                             sender, "--rcpt", "b@example.net"))
        assert d["triplet"] is not None and d["sender"] == "<>", d
        assert d["key"] == "mxg:gl:t:192.0.2.0/24|<>|b@example.net", d


@test
def test_ipv6_clients_are_keyed_by_their_64():
    deferred("2001:db8:1:2:3::4", "a@example.org", "b@example.net")
    d = ok_json(greylist("show", "--json", "--ip", "2001:db8:1:2:ffff::1",
                         "--from", "a@example.org", "--rcpt", "b@example.net"))
    assert d["client_net"] == "2001:db8:1:2::/64" and d["triplet"], d
    d = ok_json(greylist("client", "--json", "--ip", "2001:db8:1:2::9"))
    assert [t["rcpt"] for t in d["triplets"]] == ["b@example.net"], d


@test
def test_auto_whitelist_after_n_passed_triplets_shows_and_lets_a_new_triplet_pass():
    for i in range(AWL):
        deferred("192.0.2.20", "s%d@example.org" % i, "r@example.net")
    time.sleep(DELAY + 0.1)
    for i in range(AWL):
        passed("192.0.2.20", "s%d@example.org" % i, "r@example.net")
    d = ok_json(greylist("client", "--json", "--ip", "192.0.2.21"))
    assert d["passed"] == AWL and d["whitelisted"] is True, d
    r = ok(greylist("client", "--ip", "192.0.2.21"))
    assert "auto-whitelisted: yes" in r.out, r
    passed("192.0.2.22", "new@example.org", "other@example.net",
           symbol="GREYLIST_AWL")


@test
def test_client_lists_that_networks_triplets_sorted_and_no_others():
    deferred("192.0.2.30", "b@example.org", "r@example.net")
    deferred("192.0.2.31", "a@example.org", "r@example.net")
    deferred("198.51.100.1", "c@example.org", "r@example.net")
    d = ok_json(greylist("client", "--json", "--ip", "192.0.2.99"))
    assert d["client_net"] == "192.0.2.0/24" and d["passed"] == 0, d
    assert [t["sender"] for t in d["triplets"]] == ["a@example.org", "b@example.org"], d
    assert all(t["state"] == "wait" for t in d["triplets"]), d
    r = ok(greylist("client", "--ip", "192.0.2.99"))
    lines = [l for l in r.out.splitlines() if l.startswith("triplet ")]
    assert len(lines) == 2 and "triplets: 2" in r.out, r
    assert lines[0].startswith("triplet 192.0.2.0/24 a@example.org r@example.net state=wait"), r
    assert "198.51.100" not in r.out, r


@test
def test_client_escapes_glob_characters_of_the_prefix_in_its_scan():
    # An unescaped "m[1]:" matches "m1:" and never itself; "a?:" matches "ab:".
    tricky = write_config(config(prefix="m[1]:"), "tricky.conf")
    plain = write_config(config(prefix="m1:"), "plain.conf")
    q = write_config(config(prefix="a?:"), "q.conf")
    ab = write_config(config(prefix="ab:"), "ab.conf")
    deferred("192.0.2.40", "mine@example.org", "r@example.net", conf=tricky)
    deferred("192.0.2.40", "theirs@example.org", "r@example.net", conf=plain)
    deferred("192.0.2.40", "q@example.org", "r@example.net", conf=q)
    deferred("192.0.2.40", "ab@example.org", "r@example.net", conf=ab)
    for conf, want in ((tricky, "mine@example.org"), (plain, "theirs@example.org"),
                       (q, "q@example.org"), (ab, "ab@example.org")):
        d = ok_json(greylist("client", "--json", "--ip", "192.0.2.40", conf=conf))
        got = [t["sender"] for t in d["triplets"]]
        assert got == [want], "config %s: want [%r], got %r" % (
            os.path.basename(conf), want, got)
        entries = ok_json(greylist("list", "--json", conf=conf))
        got = [e.get("sender") for e in entries]
        assert got == [want], "list with %s: %r" % (os.path.basename(conf), got)


@test
def test_list_prints_every_triplet_and_client_one_a_line_and_as_json():
    pass_triplet("192.0.2.50", "a@example.org", "r@example.net")
    deferred("198.51.100.7", "b@example.org", "r@example.net")
    r = ok(greylist("list"))
    lines = sorted(r.out.splitlines())
    assert len(lines) == 3, r
    assert lines[0].startswith("client 192.0.2.0/24 passed=1 whitelisted=no ttl="), r
    assert re.match(r"triplet 192\.0\.2\.0/24 a@example\.org r@example\.net state=pass "
                    r"seen=2 first=\S+Z last=\S+Z ttl=\d+ passes_in=0$", lines[1]), r
    assert re.match(r"triplet 198\.51\.100\.0/24 b@example\.org r@example\.net "
                    r"state=wait seen=1 first=\S+Z last=- ttl=\d+ passes_in=\d+$",
                    lines[2]), r
    entries = ok_json(greylist("list", "--json"))
    kinds = sorted((e["type"], e["client_net"]) for e in entries)
    assert kinds == [("client", "192.0.2.0/24"), ("triplet", "192.0.2.0/24"),
                     ("triplet", "198.51.100.0/24")], entries


@test
def test_list_of_an_empty_store_is_empty():
    assert ok(greylist("list")).out == ""
    assert ok_json(greylist("list", "--json")) == []


@test
def test_list_walks_every_scan_batch_and_limit_caps_it():
    n = 2500
    cmds = [["HSET", "mxg:gl:t:10.%d.%d.0/24|s@example.org|r@example.net"
             % (i // 256, i % 256), "first", "1700000000", "state", "wait",
             "seen", "1"] for i in range(n)]
    cmds += [["SET", "mxg:gl:c:10.0.%d.0/24" % i, str(i % 4)] for i in range(10)]
    cmds += [["SET", "other:unrelated", "1"], ["SET", "mxg:gl:x:future", "1"]]
    redis_pipeline(cmds)
    entries = ok_json(greylist("list", "--json"))
    assert len(entries) == n + 10, len(entries)
    assert len({e["key"] for e in entries}) == n + 10, "duplicates in the listing"
    assert len(ok(greylist("list")).out.splitlines()) == n + 10
    assert len(ok_json(greylist("list", "--json", "--limit", "1500"))) == 1500
    assert len(ok(greylist("list", "--limit", "7")).out.splitlines()) == 7
    d = ok_json(greylist("counts", "--json"))
    assert d == {"triplets_waiting": n, "triplets_passed": 0, "clients": 10,
                 "clients_whitelisted": 4}, d


@test
def test_counts_says_waiting_passed_and_whitelisted_clients():
    for i in range(AWL):
        deferred("192.0.2.60", "s%d@example.org" % i, "r@example.net")
    deferred("198.51.100.60", "x@example.org", "r@example.net")
    deferred("203.0.113.60", "y@example.org", "r@example.net")
    time.sleep(DELAY + 0.1)
    for i in range(AWL):
        passed("192.0.2.60", "s%d@example.org" % i, "r@example.net")
    passed("198.51.100.60", "x@example.org", "r@example.net")
    d = ok_json(greylist("counts", "--json"))
    assert d == {"triplets_waiting": 1, "triplets_passed": AWL + 1, "clients": 2,
                 "clients_whitelisted": 1}, d
    r = ok(greylist("counts"))
    assert r.out == ("triplets waiting: 1\ntriplets passed: %d\nclient networks: 2\n"
                     "client networks auto-whitelisted: 1\n" % (AWL + 1)), r


@test
def test_whitelist_ip_whitelists_the_network_so_new_triplets_pass_at_once():
    d = ok_json(greylist("whitelist", "--json", "--ip", "192.0.2.70"))
    assert d["passed"] == AWL and d["whitelisted"] is True, d
    assert MAX_AGE - 5 <= d["client_ttl"] <= MAX_AGE, d
    passed("192.0.2.71", "new@example.org", "r@example.net", symbol="GREYLIST_AWL")
    r = ok(greylist("whitelist", "--ip", "192.0.2.70"))
    assert "auto-whitelisted: yes" in r.out, r


@test
def test_whitelist_ip_never_lowers_a_higher_count():
    REDIS.command("SET", "mxg:gl:c:192.0.2.0/24", "7")
    d = ok_json(greylist("whitelist", "--json", "--ip", "192.0.2.1"))
    assert d["passed"] == 7 and d["client_ttl"] > 0, d


@test
def test_whitelist_ip_is_refused_when_auto_whitelist_is_0():
    conf = write_config(config(auto_whitelist=0), "noawl.conf")
    usage_error(greylist("whitelist", "--ip", "192.0.2.1", conf=conf),
                "auto_whitelist")


@test
def test_whitelist_triplet_passes_it_without_adding_to_the_count():
    deferred("192.0.2.80", "a@example.org", "r@example.net")
    d = ok_json(greylist("whitelist", "--json", "--ip", "192.0.2.80", "--from",
                         "a@example.org", "--rcpt", "r@example.net"))
    assert d["triplet"]["state"] == "pass" and d["triplet"]["seen"] == 1, d
    assert MAX_AGE - 5 <= d["triplet"]["ttl"] <= MAX_AGE, d
    passed("192.0.2.80", "a@example.org", "r@example.net")
    # a triplet never seen is created, passed
    r = ok(greylist("whitelist", "--ip", "192.0.2.81", "--from", "new@example.org",
                    "--rcpt", "r@example.net"))
    assert "state: pass" in r.out and "seen: 0" in r.out, r
    passed("192.0.2.81", "new@example.org", "r@example.net")
    d = ok_json(greylist("client", "--json", "--ip", "192.0.2.80"))
    assert d["passed"] == 0, "a triplet passed by hand must not count: %r" % d


@test
def test_delete_triplet_makes_it_deferred_again():
    pass_triplet("192.0.2.90", "a@example.org", "r@example.net")
    r = ok(greylist("delete", "--ip", "192.0.2.90", "--from", "a@example.org",
                    "--rcpt", "r@example.net"))
    assert "deleted" in r.out, r
    d = ok_json(greylist("delete", "--json", "--ip", "192.0.2.90", "--from",
                         "a@example.org", "--rcpt", "r@example.net"))
    assert d["deleted"] is False, d
    deferred("192.0.2.90", "a@example.org", "r@example.net")


@test
def test_delete_client_removes_its_count_and_all_its_triplets_only():
    pass_triplet("192.0.2.100", "a@example.org", "r@example.net")
    deferred("192.0.2.101", "b@example.org", "r@example.net")
    deferred("198.51.100.100", "c@example.org", "r@example.net")
    d = ok_json(greylist("delete", "--json", "--ip", "192.0.2.1"))
    assert d == {"client_net": "192.0.2.0/24", "count_deleted": True,
                 "triplets_deleted": 2}, d
    entries = ok_json(greylist("list", "--json"))
    assert [e["client_net"] for e in entries] == ["198.51.100.0/24"], entries
    r = ok(greylist("delete", "--ip", "192.0.2.1"))
    assert "0 triplets deleted" in r.out, r


@test
def test_redis_down_exits_1_with_a_clear_message_for_every_subcommand():
    conf = write_config(config(port=free_port()), "down.conf")
    for args in (["show", "--ip", "192.0.2.1", "--from", "a@b.c", "--rcpt", "d@e.f"],
                 ["client", "--ip", "192.0.2.1"], ["list"], ["list", "--json"],
                 ["whitelist", "--ip", "192.0.2.1"], ["delete", "--ip", "192.0.2.1"],
                 ["counts"]):
        r = greylist(*args, conf=conf)
        assert r.rc == 1, "want exit 1: %s" % r
        assert r.out == "", r
        assert re.search(r"cannot reach Redis at 127\.0\.0\.1:\d+: .*refused", r.err), r
        assert len(r.err.strip().splitlines()) == 1, "one line of error: %s" % r


@test
def test_bad_input_exits_2_with_a_message():
    cases = [
        (["show", "--ip", "192.0.2", "--from", "a@b.c", "--rcpt", "d@e.f"],
         "is not an IPv4 or IPv6 address"),
        (["show", "--ip", "not-an-ip", "--from", "a@b.c", "--rcpt", "d@e.f"],
         "not-an-ip"),
        (["client", "--ip", "192.0.2.0/24"], "is not an IPv4 or IPv6 address"),
        (["client", "--ip", ""], "is not an IPv4 or IPv6 address"),
        (["show", "--ip", "192.0.2.1"], "needs --from"),
        (["show", "--ip", "192.0.2.1", "--from", "a@b.c"], "go together"),
        (["show", "--from", "a@b.c", "--rcpt", "d@e.f"], "needs --ip"),
        (["show", "--ip", "192.0.2.1", "--from", "a@b.c", "--rcpt", ""], "--rcpt is empty"),
        (["client"], "needs --ip"),
        (["delete", "--ip", "192.0.2.1", "--rcpt", "d@e.f"], "go together"),
        (["whitelist"], "needs --ip"),
        (["list", "--ip", "192.0.2.1"], "takes no --ip"),
        (["list", "--limit", "0"], "--limit"),
        (["list", "--limit", "ten"], "--limit"),
        (["list", "--limit", "-3"], "--limit"),
        (["counts", "--from", "a@b.c", "--rcpt", "d@e.f"], "takes no --from"),
        (["client", "--ip", "192.0.2.1", "--limit", "3"], "takes no --limit"),
        (["frobnicate"], "unknown subcommand 'frobnicate'"),
        (["list", "extra"], "unexpected argument 'extra'"),
        ([], "which subcommand"),
        (["list", "--no-such-option"], "unrecognized option"),
    ]
    for args, needle in cases:
        usage_error(greylist(*args), needle)
    bad = write_config("[greylist]\ndelay = soon\n", "bad.conf")
    usage_error(greylist("counts", conf=bad), "bad.conf:2")
    usage_error(greylist("counts", conf=os.path.join(WORK, "missing.conf")),
                "missing.conf")
    badserver = write_config("[redis]\nserver = nowhere\n", "badserver.conf")
    usage_error(greylist("counts", conf=badserver), "[redis] server")


@test
def test_help_prints_usage_on_stdout_and_exits_0():
    p = subprocess.run([BIN, "greylist", "--help"], capture_output=True, timeout=30)
    assert p.returncode == 0 and b"mxguard greylist show" in p.stdout, p
    p = subprocess.run([BIN, "--help"], capture_output=True, timeout=30)
    assert p.returncode == 0 and b"mxguard greylist" in p.stdout, p


@test
def test_wrong_typed_keys_are_a_redis_error_not_a_crash():
    # Someone else's data under our prefix: a string where a hash belongs
    # is skipped by reads; a write into it is Redis's WRONGTYPE: exit 1.
    REDIS.command("SET", "mxg:gl:t:192.0.2.0/24|a@example.org|r@example.net", "junk")
    REDIS.command("HSET", "mxg:gl:c:192.0.2.0/24", "x", "1")
    assert ok_json(greylist("list", "--json")) == []
    d = ok_json(greylist("show", "--json", "--ip", "192.0.2.1", "--from",
                         "a@example.org", "--rcpt", "r@example.net"))
    assert d["triplet"] is None and d["passed"] == 0, d
    r = greylist("whitelist", "--ip", "192.0.2.1")
    assert r.rc == 1 and "WRONGTYPE" in r.err, r


# ---------------------------------------------------------------- runner

def main(argv):
    global BIN, WORK, REDIS
    build = "build"
    if "--build" in argv:
        build = argv[argv.index("--build") + 1]
    pattern = argv[argv.index("-k") + 1] if "-k" in argv else None
    BIN = os.path.join(ROOT, build, "mxguard")
    tests = [t for t in TESTS if pattern is None or pattern in t.__name__]
    started = time.monotonic()
    passed_n = failed = 0
    WORK = tempfile.mkdtemp(prefix="mxguard-glcli-")
    try:
        if not os.access(BIN, os.X_OK):
            print("not ok - environment: %s is not built" % BIN)
            print("0 passed, 1 failed")
            return 1
        try:
            REDIS = Redis(WORK).start()
        except Exception as e:
            print("not ok - environment: %s: %s" % (type(e).__name__, e))
            print("0 passed, 1 failed")
            return 1
        for t in tests:
            REDIS.command("FLUSHALL")
            try:
                t()
            except AssertionError as e:
                failed += 1
                first, _, rest = (str(e) or "assertion failed").partition("\n")
                print("not ok - %s: %s" % (t.__name__, first))
                for line in rest.splitlines():
                    print("#   " + line)
            except Exception as e:
                failed += 1
                print("not ok - %s: %s: %s" % (t.__name__, type(e).__name__, e))
                for line in traceback.format_exc().splitlines():
                    print("#   " + line)
            else:
                passed_n += 1
                print("ok - %s" % t.__name__)
            sys.stdout.flush()
    finally:
        if REDIS is not None:
            REDIS.stop()
        if failed:
            print("# work directory kept: %s" % WORK)
        else:
            shutil.rmtree(WORK, ignore_errors=True)
    print("# %.1fs" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed_n, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
