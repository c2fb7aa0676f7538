#!/usr/bin/env python3
"""`mxguard check` and `mxguard lint` as a user runs them: the JSON contract,
exit codes, and bad input of every kind (config lines, arguments, messages
with NUL bytes, 1 MB header lines, no header/body separator, binary junk).

No DNS is needed: these run without --ip, or against a nameserver that does
not exist with SPF off. Prints `ok - name` / `not ok - name: why`, then
`N passed, M failed`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "mxguard")
TMP = tempfile.mkdtemp(prefix="mxguard-cli-")
RESULTS: list[tuple[str, str | None]] = []


def write(name: str, data: bytes | str) -> str:
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


# DKIM and DMARC are off here (tests/integration/dkim_dmarc.py covers them):
# these cases run against a nameserver that does not exist.
BASE_CONF = ("[milter]\nauthserv_id = mx.test.local\n[dkim]\nenabled = no\n"
             "[dmarc]\nenabled = no\n"
             "[dns]\nnameserver = 127.0.0.1@9\ntimeout = 300ms\n")


def check(args: list[str], stdin: bytes = b"", conf: str | None = None) -> subprocess.CompletedProcess:
    path = write("c.conf", conf if conf is not None else BASE_CONF)
    return subprocess.run([BIN, "check", "-c", path, *args], input=stdin,
                          capture_output=True, timeout=60)


CASES = []


def case(fn):
    """Registers a test; main() runs them once --build is known."""
    CASES.append(fn)
    return fn


def run_case(fn):
    try:
        fn()
        RESULTS.append((fn.__name__, None))
    except AssertionError as e:
        RESULTS.append((fn.__name__, str(e) or "assertion failed"))
    except Exception as e:  # a crash of the test itself is a failure too
        RESULTS.append((fn.__name__, f"{type(e).__name__}: {e}"))


def expect_json(p: subprocess.CompletedProcess) -> dict:
    assert p.returncode == 0, f"exit {p.returncode}, stderr {p.stderr[-500:]!r}"
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"not JSON ({e}): {p.stdout[:300]!r}")


def expect_usage_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2, f"exit {p.returncode}, want 2; stderr {p.stderr!r}"
    err = p.stderr.decode(errors="replace")
    for n in needles:
        assert n in err, f"stderr lacks {n!r}: {err!r}"
    assert p.stdout == b"", f"stdout not empty: {p.stdout[:200]!r}"


MSG = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


@case
def test_json_has_every_contract_key():
    d = expect_json(check(["--json", "-"], MSG))
    for key in ("spf", "dkim", "dmarc", "symbols", "score", "action", "reply", "headers"):
        assert key in d, f"missing {key}"
    assert d["dkim"] == [] and d["dmarc"] is None
    assert d["action"] == "accept" and d["reply"] is None
    names = [h["name"] for h in d["headers"]]
    assert names[0] == "Authentication-Results", names
    assert d["headers"][0]["value"].startswith("mx.test.local;"), d["headers"][0]


@case
def test_unknown_client_gives_spf_none_for_mailfrom():
    d = expect_json(check(["--json", "--from", "a@example.org", "-"], MSG))
    assert d["spf"]["result"] == "none", d["spf"]
    assert d["spf"]["identity"] == "mailfrom" and d["spf"]["domain"] == "example.org"


@case
def test_null_sender_checks_helo_identity():
    for sender in ("<>", ""):
        d = expect_json(check(["--json", "--ip", "192.0.2.1", "--helo", "[192.0.2.1]",
                               "--from", sender, "-"], MSG))
        assert d["spf"]["identity"] == "helo", d["spf"]
        assert d["spf"]["result"] == "none", d["spf"]


@case
def test_dns_down_with_tempfail_gives_451_4_4_3():
    conf = BASE_CONF + "on_error = tempfail\n"
    d = expect_json(check(["--json", "--ip", "192.0.2.1", "--from", "a@example.org", "-"], MSG, conf))
    assert d["spf"]["result"] == "temperror", d["spf"]
    assert d["action"] == "tempfail", d["action"]
    assert d["reply"].startswith("451 4.4.3 "), d["reply"]
    assert d["headers"] == [], "a refused message gets no headers"


@case
def test_dns_down_with_accept_scores_temperror():
    conf = BASE_CONF + "on_error = accept\n"
    d = expect_json(check(["--json", "--ip", "192.0.2.1", "--from", "a@example.org", "-"], MSG, conf))
    assert d["spf"]["result"] == "temperror" and d["action"] == "accept", d
    assert "spf=temperror" in d["headers"][0]["value"], d["headers"][0]


@case
def test_forged_authentication_results_are_listed_for_removal():
    msg = (b"Authentication-Results: other.example; spf=pass\r\n"
           b"Authentication-Results: MX.TEST.LOCAL; spf=pass smtp.mailfrom=x\r\n"
           b"Authentication-Results:   (c) mx.test.local; dkim=pass\r\n"
           b"Authentication-Results: mx.test.local.evil; spf=pass\r\n\r\nbody\r\n")
    d = expect_json(check(["--json", "-"], msg))
    assert d["removed_headers"] == [
        {"name": "Authentication-Results", "index": 2},
        {"name": "Authentication-Results", "index": 3}], d["removed_headers"]


@case
def test_spf_disabled_reports_null():
    conf = BASE_CONF + "[spf]\nenabled = no\n"
    d = expect_json(check(["--json", "--ip", "192.0.2.1", "--from", "a@x.org", "-"], MSG, conf))
    assert d["spf"] is None and d["symbols"] == [], d


@case
def test_loopback_client_is_trusted_and_unchecked():
    d = expect_json(check(["--json", "--ip", "127.0.0.1", "--from", "a@x.org", "-"], MSG))
    assert d["spf"] is None and d["headers"] == [], d


@case
def test_empty_message_is_valid():
    d = expect_json(check(["--json", "-"], b""))
    assert d["action"] == "accept"


@case
def test_headers_only_message_is_valid():
    d = expect_json(check(["--json", "-"], b"Subject: x\nFrom: a@b\n"))
    assert d["action"] == "accept"


@case
def test_message_without_separator_and_nul_bytes():
    d = expect_json(check(["--json", "-"], b"Subject: a\x00b\nX-Bin: \x00\xff\xfe\n"))
    assert d["action"] == "accept"


@case
def test_nul_bytes_in_body():
    d = expect_json(check(["--json", "-"], b"Subject: x\n\n\x00\x00binary\x00\n" * 3))
    assert d["action"] == "accept"


@case
def test_one_megabyte_header_line():
    big = b"Subject: " + b"A" * (1024 * 1024) + b"\n\nbody\n"
    d = expect_json(check(["--json", "-"], big))
    assert d["action"] == "accept"


@case
def test_binary_junk_message():
    junk = bytes((i * 7919 + 13) % 256 for i in range(200000))
    d = expect_json(check(["--json", "-"], junk))
    assert d["action"] == "accept"


@case
def test_text_output_is_readable():
    p = check(["--from", "a@example.org", "-"], MSG)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "action: accept" in out and "spf: none" in out, out


@case
def test_ip_that_is_not_an_address_is_a_usage_error():
    expect_usage_error(check(["--ip", "999.1.1.1", "-"], MSG), "--ip", "999.1.1.1")
    expect_usage_error(check(["--ip", "mail.example.org", "-"], MSG), "not an IPv4 or IPv6")


@case
def test_missing_message_file_is_a_usage_error():
    expect_usage_error(check(["/nonexistent/message.eml"]), "/nonexistent/message.eml")


@case
def test_unknown_option_is_a_usage_error():
    expect_usage_error(check(["--bogus"]), "usage")


@case
def test_config_errors_name_file_and_line():
    rows = [
        ("unknown key", "[spf]\nenabled = yes\nrejectfail = yes\n", ":3:", "unknown key 'rejectfail'"),
        ("unknown section", "[nosuch]\nx = 1\n", ":1:", "unknown section [nosuch]"),
        ("bad bool", "[spf]\n\n\nreject_fail = maybe\n", ":4:", "not yes or no"),
        ("bad duration", "[dns]\ntimeout = soon\n", ":2:", "not a duration"),
        ("bad socket", "[milter]\nsocket = tcp:25@localhost\n", ":2:", "socket"),
        ("bad port", "[milter]\nsocket = inet:99999@127.0.0.1\n", ":2:", "socket"),
        ("no equals", "[spf]\nenabled\n", ":2:", "syntax error"),
        ("outside section", "enabled = yes\n", ":1:", "outside any [section]"),
        ("unknown score", "[scores]\nNO_SUCH_SYMBOL = 3\n", ":2:", "NO_SUCH_SYMBOL"),
        ("long line", "[milter]\n# " + "x" * 300 + "\n", ":2:", "longer than"),
        ("on_error", "[dns]\non_error = drop\n", ":2:", "tempfail or accept"),
    ]
    for label, text, where, what in rows:
        path = write("bad.conf", text)
        p = subprocess.run([BIN, "check", "-c", path, "-"], input=MSG, capture_output=True)
        try:
            expect_usage_error(p, path + where, what)
        except AssertionError as e:
            raise AssertionError(f"{label}: {e}")


@case
def test_binary_config_file_is_an_error():
    path = write("junk.conf", bytes(range(256)) * 4)
    p = subprocess.run([BIN, "lint", "-c", path], capture_output=True)
    expect_usage_error(p, path + ":")


@case
def test_missing_config_file_is_an_error():
    p = subprocess.run([BIN, "lint", "-c", "/nonexistent.conf"], capture_output=True)
    expect_usage_error(p, "/nonexistent.conf", "cannot open")


@case
def test_lint_accepts_the_shipped_example():
    p = subprocess.run([BIN, "lint", "-c", os.path.join(ROOT, "milter.conf.example")],
                       capture_output=True)
    assert p.returncode == 0 and b": ok" in p.stdout, (p.returncode, p.stdout, p.stderr)


@case
def test_lint_loads_spamassassins_stock_rules():
    # Debian's spamassassin package installs them here (make deps).
    path = write("sa.conf", "[rules]\nfiles = /usr/share/spamassassin/*.cf\n")
    p = subprocess.run([BIN, "lint", "-c", path, "--json"], capture_output=True)
    assert p.returncode == 0, (p.returncode, p.stderr[-500:])
    d = json.loads(p.stdout)
    assert d["errors"] == [], d["errors"][:5]
    assert d["rules_loaded"] > 2000, d["rules_loaded"]
    groups = {w.get("group") for w in d["warnings"]}
    assert "eval: test" in groups, sorted(groups)[:10]


@case
def test_lint_reports_rule_errors_with_file_and_line():
    rules = write("bad.rules", "body OK /fine/\nbody BAD /(unclosed/\nscore OK 1 2\n")
    path = write("r.conf", "[rules]\nfiles = %s\n" % rules)
    p = subprocess.run([BIN, "lint", "-c", path, "--json"], capture_output=True)
    assert p.returncode == 1, (p.returncode, p.stderr)
    d = json.loads(p.stdout)
    wheres = [e["where"] for e in d["errors"]]
    assert wheres == [rules + ":2", rules + ":3"], d["errors"]
    assert d["rules_loaded"] == 1, d


@case
def test_site_overrides_appended_to_the_example_win():
    text = open(os.path.join(ROOT, "milter.conf.example")).read()
    conf = text + "\n[dns]\nnameserver = 127.0.0.1@9\ntimeout = 300ms\non_error = accept\n" \
                  "[dkim]\nenabled = no\n[dmarc]\nenabled = no\n[rules]\nenabled = no\n" \
                  "[scores]\nSPF_TEMPERROR = 2.5\n"
    d = expect_json(check(["--json", "--ip", "192.0.2.1", "--from", "a@example.org", "-"], MSG, conf))
    assert d["action"] == "accept" and d["score"] == 2.5, d


def main() -> int:
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    BIN = os.path.join(ROOT, ap.parse_args().build, "mxguard")
    for fn in CASES:
        run_case(fn)
    failed = 0
    for name, why in RESULTS:
        if why is None:
            print(f"ok - {name}")
        else:
            failed += 1
            print(f"not ok - {name}: {why}")
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
