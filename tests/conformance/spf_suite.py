#!/usr/bin/python3
"""Run the openspf RFC 7208 SPF test suite against `mxguard check`.

NAME
    spf_suite - the openspf SPF conformance suite, through a real DNS server
                and the real mxguard binary

SYNOPSIS
    /usr/bin/python3 tests/conformance/spf_suite.py [--strict]
        [--binary PATH] [--suite FILE] [--jobs N] [--only NAME]... [-v] [--keep]

DESCRIPTION
    For each YAML document of the suite (default: the RFC 7208 suite in
    ../shared/conformance/spf-rfc7208/rfc7208-tests.yml beside the repository;
    --suite for rfc4408-tests.yml, test.yml or another file; the data files
    are read, never written) the document's zonedata is served by a real
    unbound (tests/harness/dnsserver.py, restarted with each document's zone
    on one port), a config file points mxguard at it:

        [dns]
        nameserver = 127.0.0.1@PORT
        timeout = 2s
        on_error = accept
        [spf]
        enabled = yes

    and each scenario runs, with an empty message on standard input,

        mxguard check -c CONF --json --ip HOST --helo HELO --from MAILFROM -

    (`--from ''` is the null sender: mxguard then checks the HELO identity).
    spf.result in the JSON printed must be the scenario's result (or one of
    its results when it lists several).  When the scenario gives an
    explanation and mxguard's result is fail, spf.explanation must equal it
    too; the suite's "DEFAULT" means the checker's own default explanation
    (the domain gave none), which is taken to be null or text starting with
    one of DEFAULT_EXPLANATION_PREFIXES.

    Zone data are read as the suite's reference driver (pyspf's testspf.py)
    reads them, since the suite is written for it:
      - "SPF" (type 99) records are never served: mxguard, like RFC 7208,
        uses TXT only.  But a name with SPF records and no TXT entry at all
        also gets each SPF record as a TXT record: the suite's header says
        that every section but "Selecting records" relies on this duplication
        by the driver.  "TXT: NONE" is a TXT entry that serves nothing (it
        only stops the duplication).
      - a bare TIMEOUT entry makes every query for that name fail (the DNS
        server answers REFUSED, which a resolver turns into SERVFAIL:
        see dnsserver.py), except the types listed *before* the TIMEOUT,
        which are answered; entries after it are never seen (so duplicated
        TXT records of a name with TIMEOUT are not served).
      - a per-type "TYPE: TIMEOUT" value (none in the suites of 2014.04) is
        served as a whole-name TIMEOUT, with a note.
      - names that cannot exist in DNS (a label over 63 octets) are not
        served; pyspf turns a query for them into temperror, a real
        resolver cannot even ask.
      - pyspf's "unlisted error.* names time out" rule is not emulated.

    Output: one line per failing scenario,
        FAIL <document description> / <scenario>: expected X, got Y (<reason>)
    with the reason from KNOWN_LIBSPF2_LIMITATIONS when the scenario is
    listed there (it still counts as failed), then "note:" lines (records
    the DNS server could not serve; listed scenarios that passed this time:
    mx-limit and ptr-limit depend on the order libunbound returns records
    in, which it shuffles), a summary line, and, alone on the last line,
    "N passed, M failed".  -v also prints every scenario and mxguard's JSON.
    The RFC 7208 suite (203 scenarios) takes about 5 s with --jobs 2.

    Exit status: 0 when the runner itself worked, whatever the counts;
    with --strict, 1 when a failure is not listed in
    KNOWN_LIBSPF2_LIMITATIONS; 2 when the runner could not run (no binary,
    unbound would not start, unreadable suite).

    The default binary is build/mxguard under the repository root, found from
    this file's location.  Run with Debian's /usr/bin/python3 (it needs
    python3-yaml).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "harness"))
from dnsserver import DnsServer, DnsServerError, to_octets  # noqa: E402

DEFAULT_BINARY = REPO_ROOT / "build" / "mxguard"
DEFAULT_SUITE = REPO_ROOT.parent / "shared" / "conformance" / "spf-rfc7208" / "rfc7208-tests.yml"
RUN_TIMEOUT_S = 30.0

# libspf2's default explanation is "Please see
# http://www.openspf.org/Why?id=%{S}&ip=%{C}&receiver=%{R}" expanded.
DEFAULT_EXPLANATION_PREFIXES = ("Please see http://www.openspf.org/Why",)

# Scenarios of the RFC 7208 suite that fail because of libspf2 1.2.10
# (Debian 1.2.10-7.2) behaviour, with the reason; one (null-text) because of
# libunbound's.  They still count as failed: the reason is printed with them.
# Each was checked against the DNS traffic (DnsServer(log_queries=True)) and
# libspf2's source (spf_compile.c, spf_interpret.c, spf_expand.c).
_CIDR0 = ("libspf2 rejects a CIDR length of 0 ('/0', '//0') as invalid "
          "(SPF_c_parse_cidr_ip4/ip6); RFC 7208 5.6 allows it: permerror")
_TOPLABEL = ("libspf2 only warns (SPF_record_lint) about a domain-spec without a "
             "valid top label (RFC 7208 7.1); it looks the name up instead of "
             "returning permerror")
_EMPTY_SPEC = "libspf2 accepts an empty domain-spec after ':' and uses the current domain"
_MACRO_PCT = ("libspf2 keeps a '%' followed by anything but '{', '%', '_', '-' "
              "as a literal '%'; RFC 7208 7.1 makes it a syntax error")
_MULTI_EXP = ("libspf2 uses one of several TXT records found at the exp= domain "
              "instead of ignoring the explanation (RFC 7208 6.2)")
KNOWN_LIBSPF2_LIMITATIONS: dict[str, str] = {
    # Initial processing
    "null-text": "not libspf2: libunbound (mxguard's resolver) rejects a TXT RR with no "
                 "character-string (RDLENGTH 0, illegal in RFC 1035) as malformed and "
                 "answers SERVFAIL for the whole RRset, so the record lookup is a DNS error",
    # Record evaluation
    "modifier-charset-good": "libspf2's parser allows only letters, digits, '-' and '_' in a "
                             "modifier name; 'moo.cow-far_out=' (a '.', allowed by RFC 7208) "
                             "is a syntax error to it",
    "redirect-after-mechanisms1": "libspf2 evaluates redirect= where it is written, not after "
                                  "the mechanisms (its own FIXME): the redirect to the same "
                                  "domain comes first and gives SPF_E_RECURSIVE, permerror",
    "redirect-after-mechanisms2": "the redirect target t2.example.com holds the modifier "
                                  "'moo.cow-far_out=' that libspf2 cannot parse "
                                  "(see modifier-charset-good): permerror",
    "redirect-is-modifier": "libspf2 accepts 'redirect:' (colon) as the redirect mechanism "
                            "instead of an unknown mechanism",
    "invalid-domain": _TOPLABEL,
    # PTR, A, MX, EXISTS, IP4, IP6 syntax
    "ptr-empty-domain": _EMPTY_SPEC,
    "ptr-cname-loop": "libspf2 returns temperror when the A lookup of a PTR name fails (here a "
                      "CNAME loop: SERVFAIL); RFC 7208 5.5 says to skip that name",
    "a-bad-domain": _TOPLABEL,
    "a-nxdomain": _CIDR0,
    "a-cidr4-0": _CIDR0,
    "a-cidr4-0-ip6": _CIDR0,
    "a-cidr6-0-ip4": _CIDR0,
    "a-cidr6-0-ip4mapped": _CIDR0,
    "a-cidr6-0-ip6": _CIDR0,
    "a-cidr6-0-nxdomain": _CIDR0,
    "a-numeric": _TOPLABEL,
    "a-numeric-toplabel": _TOPLABEL,
    "a-bad-toplabel": _TOPLABEL,
    "a-only-toplabel": _TOPLABEL,
    "a-only-toplabel-trailing-dot": _TOPLABEL,
    "a-empty-domain": _EMPTY_SPEC,
    "mx-bad-domain": _TOPLABEL,
    "mx-nxdomain": _CIDR0,
    "mx-cidr4-0": _CIDR0,
    "mx-cidr4-0-ip6": _CIDR0,
    "mx-cidr6-0-ip4": _CIDR0,
    "mx-cidr6-0-ip4mapped": _CIDR0,
    "mx-cidr6-0-ip6": _CIDR0,
    "mx-cidr6-0-nxdomain": _CIDR0,
    "mx-numeric-top-label": _TOPLABEL,
    "mx-bad-toplab": _TOPLABEL,
    "mx-empty-domain": _EMPTY_SPEC,
    "exists-empty-domain": _EMPTY_SPEC,
    "exists-cidr": "libspf2 does not reject a CIDR suffix on exists:; it looks up "
                   "'mail.example.com/24'",
    "cidr4-0": _CIDR0,
    "cidr4-032": "libspf2 reads a CIDR length with strtoul, so '/032' (a leading zero, "
                 "invalid in RFC 7208's ABNF) is taken as /32",
    "cidr6-0-ip4": _CIDR0,
    "cidr6-ip4": _CIDR0,
    "cidr6-0": _CIDR0,
    # Semantics of exp and other modifiers
    "exp-multiple-txt": _MULTI_EXP,
    "exp-empty-domain": "libspf2 accepts 'exp=' with an empty domain-spec",
    "exp-syntax-error": "libspf2 takes 'exp=-all' as an exp= modifier naming '-all'",
    "exp-twice": "libspf2 does not reject a second exp= modifier",
    "redirect-empty-domain": "libspf2 accepts 'redirect=' with an empty domain-spec",
    "redirect-twice": "libspf2 does not reject a second redirect= modifier",
    "unknown-modifier-syntax": _MACRO_PCT + " (here '%a' in an unknown modifier)",
    "non-ascii-exp": "libspf2 uses non-ASCII explanation text; RFC 7208 6.2 wants it ignored",
    "two-exp-records": _MULTI_EXP,
    # Macro expansion rules
    "exp-only-macro-char": "libspf2 allows the c, r and t macros in every modifier, also in "
                           "the exp= domain-spec (RFC 7208 7.3: only in explanation text)",
    "invalid-macro-char": _MACRO_PCT,
    "invalid-embedded-macro-char": _MACRO_PCT,
    "invalid-trailing-macro-char": _MACRO_PCT,
    "domain-name-truncation": "libspf2 does not shorten an expanded name over 253 characters "
                              "by dropping labels from the left (RFC 7208 7.3); the exp= name "
                              "cannot be asked and the default explanation is used",
    "v-macro-ip6": "libspf2 writes %{ir} IPv6 nibbles in lower case (as RFC 7208's own "
                   "examples do) and the suite wants upper case",
    "upper-macro": "libspf2 URL-encodes with lower-case hex digits ('%3d'); the suite wants '%3D'",
    # Processing limits
    "ptr-limit": "libspf2 returns permerror when there are more than 10 PTR records and none of "
                 "the first 10 validates (RFC 7208 4.6.4: ignore the rest, never permerror); "
                 "libunbound shuffles the PTR records, so this passes or fails at random",
}


@dataclass
class Scenario:
    document: str
    name: str
    data: dict[str, Any]

    @property
    def expected(self) -> list[str]:
        result = self.data.get("result")
        return [str(r) for r in result] if isinstance(result, list) else [str(result)]


@dataclass
class Outcome:
    scenario: Scenario
    ok: bool
    expected: str = ""
    got: str = ""
    reason: str = ""
    output: str = ""


def zone_records(zonedata: dict[str, Any] | None, notes: list[str]) -> list[tuple[str, str, Any]]:
    """The suite's zonedata as DnsServer records, read as pyspf's driver reads them."""
    records: list[tuple[str, str, Any]] = []
    for name, entries in (zonedata or {}).items():
        name = str(name)
        ordered: list[tuple[str, Any]] = []
        spf_values: list[Any] = []
        has_txt = False
        for entry in entries or []:
            if isinstance(entry, str):
                ordered.append((entry.upper(), None))
                continue
            for rrtype, value in entry.items():
                rrtype = str(rrtype).upper()
                if rrtype == "TXT":
                    has_txt = True
                elif rrtype == "SPF":
                    spf_values.append(value)
                if value == "NONE":
                    continue
                if value == "TIMEOUT":
                    notes.append("%s: per-type %s TIMEOUT served as a whole-name TIMEOUT" % (name, rrtype))
                    ordered.append(("TIMEOUT", None))
                    continue
                ordered.append((rrtype, value))
        if not has_txt:
            ordered += [("TXT", v) for v in spf_values]
        for rrtype, value in ordered:
            if rrtype == "TIMEOUT":
                records.append((name, "TIMEOUT", None))
                break                    # pyspf never reads past a TIMEOUT
            if rrtype == "SPF":
                continue                 # type 99 is not served
            if rrtype == "MX" and isinstance(value, list):
                value = tuple(value)
            records.append((name, rrtype, value))
    return records


def config_text(dns: DnsServer) -> str:
    return ("[dns]\nnameserver = %s\ntimeout = 2s\non_error = accept\n"
            "[spf]\nenabled = yes\n" % dns.address)


_CHILDREN: set[subprocess.Popen[bytes]] = set()
_CHILDREN_LOCK = threading.Lock()


def _kill_children() -> None:
    with _CHILDREN_LOCK:
        for proc in list(_CHILDREN):
            if proc.poll() is None:
                proc.kill()


def run_scenario(binary: str, conf: str, sc: Scenario) -> Outcome:
    data = sc.data
    expected = sc.expected
    shown_expected = "|".join(expected)
    argv = [binary, "check", "-c", conf, "--json",
            "--ip", str(data.get("host", "")),
            "--helo", str(data.get("helo", "")),
            "--from", str(data.get("mailfrom", "")), "-"]
    try:
        proc = subprocess.Popen([to_octets(a) for a in argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return Outcome(sc, False, shown_expected, "nothing", "cannot run %s: %s" % (binary, exc))
    with _CHILDREN_LOCK:
        _CHILDREN.add(proc)
    try:
        out, err = proc.communicate(b"", timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return Outcome(sc, False, shown_expected, "nothing", "mxguard ran over %.0f s" % RUN_TIMEOUT_S)
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(proc)
    text = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace").strip()
    try:
        verdict = json.loads(text)
        spf = verdict["spf"]
        got = spf["result"] if isinstance(spf, dict) else None
    except (ValueError, KeyError, TypeError):
        why = "mxguard exited %d, no JSON verdict" % proc.returncode
        if stderr:
            why += ": " + stderr.splitlines()[-1][:200]
        return Outcome(sc, False, shown_expected, "nothing", why, text + stderr)
    if proc.returncode != 0:
        # `mxguard check` exits 0 for every verdict: anything else (a crash
        # after printing, a sanitizer report at exit) is a failure.
        why = "mxguard exited %d" % proc.returncode
        if stderr:
            why += ": " + stderr.splitlines()[-1][:200]
        return Outcome(sc, False, shown_expected, str(got), why, text + stderr)
    if got is None:
        return Outcome(sc, False, shown_expected, "no spf result", "spf is null in the JSON", text)
    if got not in expected:
        return Outcome(sc, False, shown_expected, str(got), "", text)
    want_exp = data.get("explanation")
    if want_exp is not None and got == "fail":
        got_exp = spf.get("explanation")
        if want_exp == "DEFAULT":
            ok = got_exp is None or str(got_exp).startswith(DEFAULT_EXPLANATION_PREFIXES)
        else:
            ok = got_exp == want_exp
        if not ok:
            return Outcome(sc, False, "explanation %s" % json.dumps(want_exp),
                           "explanation %s" % json.dumps(got_exp), "explanation mismatch", text)
    return Outcome(sc, True, shown_expected, str(got), "", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the openspf SPF test suite against mxguard check.")
    parser.add_argument("--binary", default=str(DEFAULT_BINARY), help="mxguard binary (default %(default)s)")
    parser.add_argument("--suite", default=str(DEFAULT_SUITE), help="suite YAML file (default %(default)s)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 on any failure not in KNOWN_LIBSPF2_LIMITATIONS")
    parser.add_argument("--jobs", type=int, default=2, help="scenarios run at once (default 2)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this scenario (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every scenario and its JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("spf_suite: mxguard binary not found or not executable: %s (run make)" % binary, file=sys.stderr)
        return 2
    try:
        with open(args.suite, "rb") as f:
            documents = [d for d in yaml.safe_load_all(f) if d]
    except (OSError, yaml.YAMLError) as exc:
        print("spf_suite: cannot read suite %s: %s" % (args.suite, exc), file=sys.stderr)
        return 2

    # SIGTERM unwinds like an exception, so the finally below cleans up
    # (dnsserver chains its own handler, which stops unbound, before this one).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    workdir = tempfile.mkdtemp(prefix="spf-suite-")
    conf = os.path.join(workdir, "mxguard.conf")
    outcomes: list[Outcome] = []
    notes: list[str] = []
    started = time.monotonic()
    dns = DnsServer(os.path.join(workdir, "dns"))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        with open(conf, "w") as f:
            f.write(config_text(dns))
        for number, doc in enumerate(documents, 1):
            description = str(doc.get("description") or "document %d" % number).strip()
            scenarios = [Scenario(description, str(name), data or {})
                         for name, data in (doc.get("tests") or {}).items()
                         if not args.only or str(name) in args.only]
            if not scenarios:
                continue
            dns.restart_with(zone_records(doc.get("zonedata"), notes))
            for rec, why in dns.skipped:
                notes.append("%s: not served: %s" % (description, why))
            futures = [pool.submit(run_scenario, binary, conf, sc) for sc in scenarios]
            outcomes += [f.result() for f in futures]
    except DnsServerError as exc:
        print("spf_suite: %s" % exc, file=sys.stderr)
        return 2
    finally:
        # Interrupted: drop the scenarios not started, end the running ones.
        pool.shutdown(wait=False, cancel_futures=True)
        _kill_children()
        pool.shutdown(wait=True)
        dns.stop()
        if args.keep:
            print("work directory kept: %s" % workdir, file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    unexplained = 0
    failed = 0
    for o in outcomes:
        sc = o.scenario
        known = KNOWN_LIBSPF2_LIMITATIONS.get(sc.name)
        if args.verbose:
            print("%s %s / %s: expected %s, got %s%s" % ("ok  " if o.ok else "FAIL", sc.document, sc.name,
                                                         o.expected, o.got, " (%s)" % o.reason if o.reason else ""))
            print("    " + o.output.strip().replace("\n", "\n    "))
        if o.ok:
            if known:
                notes.append("%s is listed in KNOWN_LIBSPF2_LIMITATIONS but passes" % sc.name)
            continue
        failed += 1
        reasons = [r for r in (o.reason, ("known libspf2 limitation: " + known) if known else "") if r]
        if not known:
            unexplained += 1
        if not args.verbose:
            print("FAIL %s / %s: expected %s, got %s%s" % (sc.document, sc.name, o.expected, o.got,
                                                          " (%s)" % "; ".join(reasons) if reasons else ""))
    for note in sorted(set(notes)):
        print("note: %s" % note)
    print("suite %s, %d scenarios in %.1f s, %d failures not in KNOWN_LIBSPF2_LIMITATIONS"
          % (os.path.basename(args.suite), len(outcomes), time.monotonic() - started, unexplained))
    print("%d passed, %d failed" % (len(outcomes) - failed, failed))
    if args.strict and unexplained:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
