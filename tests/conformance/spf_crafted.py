#!/usr/bin/python3
"""Crafted SPF inputs against `mxguard check`: libspf2's macro CVEs and limits.

NAME
    spf_crafted - hostile SPF records, explanations, senders and HELO names
                  through a real DNS server and the real mxguard binary

SYNOPSIS
    /usr/bin/python3 tests/conformance/spf_crafted.py [--binary PATH]
        [--valgrind] [--valgrind-leaks] [--jobs N] [--only NAME]... [-v]
        [--list] [--keep]

DESCRIPTION
    Every case's records are served together by one real unbound
    (tests/harness/dnsserver.py) on 127.0.0.1; a config file points mxguard
    at it:

        [dns]
        nameserver = 127.0.0.1@PORT
        timeout = 2s
        on_error = accept
        [spf]
        enabled = yes

    and each case runs, with an empty message on standard input,

        mxguard check -c CONF --json --ip IP --helo HELO --from SENDER -

    (arguments are passed as bytes: senders and HELO names with 8-bit octets
    reach mxguard unchanged).  A case passes when the process exits 0 (not
    killed by a signal, no glibc "stack smashing detected" / malloc abort),
    its stderr holds no sanitizer report ("ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer", UBSan's "runtime error:") and no valgrind error,
    the JSON on stdout parses and spf.result is the value RFC 7208 requires
    (each case says why).

    The cases:
      cve-*    the inputs that reach libspf2 1.2.10's macro-expansion and
               macro-compilation bugs (CVE-2021-20314, CVE-2021-33912,
               CVE-2021-33913, CVE-2023-42118).  Debian 12's libspf2
               1.2.10-7.2 carries the 2021 fixes; its CVE-2021-20314 fix
               ("ds_avail = _avail - sizeof(SPF_data_t)" in spf_compile.c)
               is what makes CVE-2023-42118 reachable: once a macro-string's
               compiled data reaches 508 of its 511 bytes at a %{..}
               variable, the next ds_avail wraps to SIZE_MAX and the
               following literal text is copied past a stack buffer
               (upstream fix d14abff, not in Debian).
      void-*   the void-lookup limit (RFC 7208 4.6.4: more than 2 DNS
               lookups of mechanisms answered NXDOMAIN or with no records
               -> permerror), which mxguard enforces in its DNS layer.
      dns-*    the limit of 10 mechanisms and modifiers that cause DNS
               lookups (RFC 7208 4.6.4), counted over the whole evaluation,
               includes and redirects included, and the limit of 10 address
               lookups per mx mechanism.

    --valgrind wraps every run in
        valgrind -q --error-exitcode=99 --leak-check=no
    (--valgrind-leaks: --leak-check=full --errors-for-leak-kinds=definite),
    which sees inside libspf2.so, where an ASan build of mxguard does not:
    ASan instruments only mxguard's own code (its interceptors and malloc
    redzones still catch some of libspf2's errors).  Use it with the plain
    build (valgrind and ASan do not mix).  For the ASan build set
    ASAN_OPTIONS yourself (detect_leaks=0 or 1); a LeakSanitizer report is
    named as such in the failure reason.

    Output: "ok - <case>" or "not ok - <case>: <reason>" per case (-v adds
    mxguard's JSON and stderr), then, alone on the last line,
    "N passed, M failed".  Exit status 1 when any case failed, 2 when the
    runner could not run (no binary, unbound would not start).

    The default binary is build/mxguard under the repository root, found from
    this file's location.  Python 3 standard library only.
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
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "harness"))
from dnsserver import DnsServer, DnsServerError  # noqa: E402

DEFAULT_BINARY = REPO_ROOT / "build" / "mxguard"
CLIENT_IP = "192.0.2.9"
RUN_TIMEOUT_S = 60.0
VALGRIND_TIMEOUT_S = 240.0

# Text in stderr that means the process hit a memory error, whatever its exit
# status (glibc aborts, sanitizers, valgrind).
CRASH_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "stack smashing detected",
    "buffer overflow detected",
    "malloc(): ",
    "free(): ",
    "munmap_chunk(): ",
    "double free or corruption",
    "corrupted size vs. prev_size",
    "Invalid read of size",
    "Invalid write of size",
    "Conditional jump or move depends on uninitialised",
    "Syscall param ",
    "Process terminating with default action",
    "definitely lost in",
)


@dataclass
class Case:
    name: str
    sender: bytes
    expected: str
    why: str
    records: list = field(default_factory=list)
    helo: bytes = b"mail.client.test"
    ip: str = CLIENT_IP


def _b(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1")


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(name, sender, expected, why, records, helo=b"mail.client.test"):
        cases.append(Case(name, _b(sender), expected, why, records, _b(helo)))

    # ---- CVE-2021-20314: 4-byte stack overflow compiling an explanation --
    # Unfixed 1.2.10: SPF_c_parse_macro allows a literal of ds_avail = 511 -
    # data_used bytes but writes it after the 4-byte SPF_data_t header:
    # 250 chars (256 bytes compiled), %{d} (4), then 251 chars -> 4 bytes
    # past SPF_record_compile_macro's stack buffer ("stack smashing
    # detected" with vanilla 1.2.10).  Fixed in Debian: compile error.
    add("cve-2021-20314-exp-literal-overflow", "joe@e20314.test", "fail",
        "the exp text cannot be compiled (libspf2's 511-byte limit); RFC 7208 "
        "6.2: errors in the explanation are ignored, -all still fails",
        [("e20314.test", "TXT", "v=spf1 -all exp=x.e20314.test"),
         ("x.e20314.test", "TXT", "a" * 250 + "%{d}" + "b" * 251)])

    # ---- CVE-2023-42118: ds_avail underflow (Debian's 20314 fix) ---------
    # compiled: 250 chars -> 256, %{d} -> 260, 240 chars -> 504, %{d} -> 508;
    # ds_avail = 511 - 508 - 4 wraps, the next literal is copied past the
    # stack buffer of SPF_record_compile_macro (~515 bytes).
    add("cve-2023-42118-exp-underflow", "joe@e42118a.test", "fail",
        "the exp text is too long for libspf2 to compile; RFC 7208 6.2: "
        "explanation errors are ignored and -all fails",
        [("e42118a.test", "TXT", "v=spf1 -all exp=x.e42118a.test"),
         ("x.e42118a.test", "TXT",
          "a" * 250 + "%{d}" + "b" * 240 + "%{d}" + "c" * 64)])
    # 127 macros alone are 508 bytes compiled: the shortest form.
    add("cve-2023-42118-exp-127-macros", "joe@e42118b.test", "fail",
        "as above: explanation errors never change the result (RFC 7208 6.2)",
        [("e42118b.test", "TXT", "v=spf1 -all exp=x.e42118b.test"),
         ("x.e42118b.test", "TXT", "%{d}" * 127 + "c" * 40)])
    # libspf2 reads " X" in an explanation as "%X", so " {d}" is a macro:
    # an explanation shaped like an SPF record ("v=spf1 {d} {d} ...") whose
    # every term is short still reaches 508 bytes (12 + 124 * 4).
    add("cve-2023-42118-exp-spf-shaped", "joe@e42118c.test", "fail",
        "RFC 7208 7.1: '{d}' without '%' is literal explanation text; the "
        "result is -all's fail whatever the explanation",
        [("e42118c.test", "TXT", "v=spf1 -all exp=x.e42118c.test"),
         ("x.e42118c.test", "TXT", "v=spf1" + " {d}" * 124 + " cccccccccccc" * 8)])
    # libspf2 fetches and compiles the explanation for fail, softfail,
    # neutral and none alike, and for included records too (SPF_i_done).
    bad_exp = "%{d}" * 127 + "c" * 40
    add("cve-2023-42118-exp-on-neutral", "joe@e42118d.test", "neutral",
        "?all: neutral; RFC 7208 6.2 uses exp= for fail only",
        [("e42118d.test", "TXT", "v=spf1 ?all exp=x.e42118d.test"),
         ("x.e42118d.test", "TXT", bad_exp)])
    add("cve-2023-42118-exp-in-included-record", "joe@e42118e.test", "neutral",
        "the included record fails, so include does not match (RFC 7208 5.2); "
        "?all gives neutral and the included exp= is never used",
        [("e42118e.test", "TXT", "v=spf1 include:i.e42118e.test ?all"),
         ("i.e42118e.test", "TXT", "v=spf1 -all exp=x.e42118e.test"),
         ("x.e42118e.test", "TXT", bad_exp)])
    # The same in a mechanism's domain-spec: SPF_c_mech_add's buffer is 4096
    # bytes, so 100 bytes stay inside it (silent) and 5000 smash the stack.
    long_spec = "a" * 250 + "%{d}" + "b" * 240 + "%{d}"
    add("cve-2023-42118-mechanism-short", "joe@m42118a.test", "permerror",
        "the exists: target has labels of 250+ octets: no valid domain name "
        "can come out of it, a syntax error of the record (RFC 7208 4.6, 4.8)",
        [("m42118a.test", "TXT", "v=spf1 exists:" + long_spec + "c" * 100 + " -all")])
    add("cve-2023-42118-mechanism-long", "joe@m42118b.test", "permerror",
        "as above, with 5000 more octets in the last label",
        [("m42118b.test", "TXT", "v=spf1 exists:" + long_spec + "c" * 5000 + " -all")])
    add("cve-2023-42118-modifier", "joe@m42118c.test", "permerror",
        "the redirect= target cannot be a domain name: permerror "
        "(RFC 7208 4.6, 6.1)",
        [("m42118c.test", "TXT", "v=spf1 redirect=" + long_spec + "c" * 5000)])
    # Through an include: the crafted record is one lookup away.
    add("cve-2023-42118-via-include", "joe@m42118d.test", "permerror",
        "the included record is broken: include yields permerror "
        "(RFC 7208 5.2)",
        [("m42118d.test", "TXT", "v=spf1 include:evil.m42118d.test -all"),
         ("evil.m42118d.test", "TXT",
          "v=spf1 exists:" + long_spec + "c" * 5000 + " -all")])

    # ---- CVE-2021-33912: sprintf("%%%02x", (char)c) for 8-bit octets -----
    # Unfixed: a sign-extended octet prints "%ffffffc3" (9 bytes) into a
    # 3-bytes-per-octet heap buffer.  The sender's local part is the
    # attacker's; uppercase %{L} URL-encodes it (RFC 7208 7.3).
    add("cve-2021-33912-8bit-local-part", b"\xc3\xb6\xff@u33912.test", "pass",
        "%{L} of octets C3 B6 FF is %c3%b6%ff (RFC 7208 7.3, case-insensitive "
        "in DNS): exists: finds the A record",
        [("u33912.test", "TXT", "v=spf1 exists:%{L}.ok.u33912.test -all"),
         ("%c3%b6%ff.ok.u33912.test", "A", "127.0.0.2")])
    # Unfixed, each 8-bit octet also comes out as "%ff" (the sign extension's
    # leading ff survives, the rest is overwritten by the next octet), and
    # the last one writes 6 bytes past the buffer.
    add("cve-2021-33912-utf8-local-part", b"\xc3\xa9" * 10 + b"@v33912.test", "pass",
        "ten U+00E9 in UTF-8 (RFC 6531 local part), each %c3%a9 (RFC 7208 7.3)",
        [("v33912.test", "TXT", "v=spf1 exists:%{L}.ok.v33912.test -all"),
         ("%c3%a9" * 10 + ".ok.v33912.test", "A", "127.0.0.2")])
    add("cve-2021-33912-8bit-helo", "joe@h33912.test", "pass",
        "%{H} is the HELO name given, URL-encoded (RFC 7208 7.3)",
        [("h33912.test", "TXT", "v=spf1 exists:%{H}.ok.h33912.test -all"),
         ("%c3%a9%c3%a9.%c3%a9.ok.h33912.test", "A", "127.0.0.2")],
        helo=b"\xc3\xa9\xc3\xa9.\xc3\xa9")
    add("cve-2021-33912-8bit-in-exp", b"\xff" * 30 + b"@x33912.test", "fail",
        "-all fails; the explanation (%{L} expanded) does not change that",
        [("x33912.test", "TXT", "v=spf1 -all exp=e.x33912.test"),
         ("e.x33912.test", "TXT", "denied:%{L}")])

    # ---- CVE-2021-33913: reverse transformer keeps the wrong length ------
    # Unfixed: after %{..r} reversal `len` is the leftmost label's length,
    # the URL-encode buffer is malloc(3 * len + 1) and the whole reversed
    # name is written into it (heap overflow, "munmap_chunk(): invalid
    # pointer"); with digits the truncation uses the wrong length.
    longlabel = "b" * 50
    add("cve-2021-33913-reverse-urlencode", "joe@b." + longlabel + ".r33913.test",
        "pass",
        "%{Dr} of b.<50 b>.r33913.test is test.r33913.<50 b>.b (RFC 7208 7.3)",
        [("b." + longlabel + ".r33913.test", "TXT",
          "v=spf1 exists:%{Dr}.ok.r33913.test -all"),
         ("test.r33913." + longlabel + ".b.ok.r33913.test", "A", "127.0.0.2")])
    add("cve-2021-33913-reverse-truncate", "joe@a." + longlabel + ".t33913.test",
        "pass",
        "%{d2r}: reversed, the 2 rightmost labels: <50 b>.a (RFC 7208 7.3)",
        [("a." + longlabel + ".t33913.test", "TXT",
          "v=spf1 exists:%{d2r}.ok.t33913.test -all"),
         (longlabel + ".a.ok.t33913.test", "A", "127.0.0.2")])
    add("cve-2021-33913-reverse-local-part-delimiter", "a-b-c@l33913.test", "pass",
        "%{lr-} of a-b-c split on '-' and reversed is c.b.a (RFC 7208 7.3)",
        [("l33913.test", "TXT", "v=spf1 exists:%{lr-}.ok.l33913.test -all"),
         ("c.b.a.ok.l33913.test", "A", "127.0.0.2")])
    add("cve-2021-33913-reverse-in-exp", "joe@a." + longlabel + ".x33913.test",
        "fail",
        "-all fails; the explanation's %{Dr} does not change that",
        [("a." + longlabel + ".x33913.test", "TXT",
          "v=spf1 -all exp=e.x33913.test"),
         ("e.x33913.test", "TXT", "denied:%{Dr}:%{Lr}")])

    # ---- void lookups: RFC 7208 4.6.4, limit 2 -----------------------------
    add("void-3-nxdomain", "joe@v3.test", "permerror",
        "three a: mechanisms answered NXDOMAIN: more than 2 void lookups",
        [("v3.test", "TXT", "v=spf1 a:n1.v3.test a:n2.v3.test a:n3.v3.test -all")])
    add("void-2-nxdomain", "joe@v2.test", "fail",
        "exactly 2 void lookups is within the limit; -all fails",
        [("v2.test", "TXT", "v=spf1 a:n1.v2.test a:n2.v2.test -all")])
    add("void-2-then-match", "joe@v2m.test", "pass",
        "2 void lookups (NXDOMAIN, then an MX query answered NODATA), then "
        "ip4: matches",
        [("v2m.test", "TXT",
          "v=spf1 a:n1.v2m.test mx:nodata.v2m.test ip4:192.0.2.9 -all"),
         ("nodata.v2m.test", "TXT", "not an SPF record")])
    add("void-3-nodata", "joe@v3nd.test", "permerror",
        "a:, exists: and mx: answered NOERROR with no records (NODATA) count "
        "as void too: 3 > 2, before ip4: is reached",
        [("v3nd.test", "TXT",
          "v=spf1 a:d1.v3nd.test exists:d2.v3nd.test mx:d3.v3nd.test "
          "ip4:192.0.2.9 -all"),
         ("d1.v3nd.test", "TXT", "x"), ("d2.v3nd.test", "TXT", "x"),
         ("d3.v3nd.test", "TXT", "x")])
    add("void-3-across-include", "joe@vi.test", "permerror",
        "the limit is for the whole evaluation: 1 void in the record and 2 "
        "in the included one",
        [("vi.test", "TXT", "v=spf1 a:n1.vi.test include:i.vi.test -all"),
         ("i.vi.test", "TXT", "v=spf1 a:n2.vi.test a:n3.vi.test -all")])
    add("void-2-plus-missing-exp", "joe@vexp.test", "fail",
        "2 void lookups, then exp= names a domain that does not exist: the "
        "exp lookup is no mechanism's lookup (RFC 7208 4.6.4) and its failure "
        "only drops the explanation (6.2)",
        [("vexp.test", "TXT",
          "v=spf1 a:n1.vexp.test a:n2.vexp.test -all exp=n3.vexp.test")])

    # ---- 10 DNS mechanisms/modifiers: RFC 7208 4.6.4 ------------------------
    hosts = [("h%d.dns.test" % i, "A", "198.51.100.%d" % (i + 1)) for i in range(30)]

    def a_terms(first: int, n: int) -> str:
        return " ".join("a:h%d.dns.test" % i for i in range(first, first + n))

    add("dns-10-a", "joe@d10.test", "fail",
        "10 a: mechanisms are allowed; none matches, -all fails",
        hosts + [("d10.test", "TXT", "v=spf1 %s -all" % a_terms(0, 10))])
    add("dns-11-a", "joe@d11.test", "permerror",
        "an 11th DNS mechanism is reached: permerror",
        hosts + [("d11.test", "TXT", "v=spf1 %s -all" % a_terms(0, 11))])
    add("dns-11-a-no-all", "joe@d11n.test", "permerror",
        "the 11th DNS mechanism is the last term: still over the limit "
        "(libspf2 checks only before the next mechanism)",
        hosts + [("d11n.test", "TXT", "v=spf1 %s" % a_terms(0, 11))])
    add("dns-match-before-11th", "joe@d11p.test", "pass",
        "ip4: matches after 10 DNS mechanisms, before the 11th is evaluated: "
        "the limit is one of evaluation (RFC 7208 4.6.4)",
        hosts + [("d11p.test", "TXT",
                  "v=spf1 %s ip4:192.0.2.9 a:h10.dns.test -all" % a_terms(0, 10))])
    add("dns-10-across-include", "joe@d10i.test", "fail",
        "2 a: + include + 7 a: in the included record = 10",
        hosts + [("d10i.test", "TXT", "v=spf1 %s include:i.d10i.test -all" % a_terms(0, 2)),
                 ("i.d10i.test", "TXT", "v=spf1 %s -all" % a_terms(2, 7))])
    add("dns-11-across-include", "joe@d11i.test", "permerror",
        "2 a: + include + 8 a: in the included record = 11: the count is over "
        "the whole evaluation, includes included",
        hosts + [("d11i.test", "TXT", "v=spf1 %s include:i.d11i.test -all" % a_terms(0, 2)),
                 ("i.d11i.test", "TXT", "v=spf1 %s -all" % a_terms(2, 8))])
    add("dns-11-with-redirect", "joe@d11r.test", "permerror",
        "10 a: + redirect= = 11 terms causing DNS lookups",
        hosts + [("d11r.test", "TXT", "v=spf1 %s redirect=r.d11r.test" % a_terms(0, 10)),
                 ("r.d11r.test", "TXT", "v=spf1 -all")])
    add("dns-10-with-redirect", "joe@d10r.test", "fail",
        "9 a: + redirect= = 10; the target's -all fails",
        hosts + [("d10r.test", "TXT", "v=spf1 %s redirect=r.d10r.test" % a_terms(0, 9)),
                 ("r.d10r.test", "TXT", "v=spf1 -all")])
    inc = [("i%d.inc.test" % i, "TXT", "v=spf1 ip4:198.51.100.%d -all" % (i + 1))
           for i in range(12)]
    add("dns-10-includes", "joe@inc10.test", "fail",
        "10 include terms, none matching: within the limit; -all fails",
        inc + [("inc10.test", "TXT", "v=spf1 %s -all" % " ".join(
            "include:i%d.inc.test" % i for i in range(10)))])
    add("dns-9-includes-and-redirect", "joe@inc9r.test", "fail",
        "9 includes + redirect = 10 terms; the redirect target's -all fails",
        inc + [("inc9r.test", "TXT", "v=spf1 %s redirect=i11.inc.test" % " ".join(
            "include:i%d.inc.test" % i for i in range(9)))])
    add("dns-11-includes", "joe@inc11.test", "permerror",
        "11 include terms: over the limit (RFC 7208 4.6.4)",
        inc + [("inc11.test", "TXT", "v=spf1 %s -all" % " ".join(
            "include:i%d.inc.test" % i for i in range(11)))])
    # A tree of includes: 9 + 81 + 729 record evaluations, each record within
    # libspf2's per-record limit.  RFC 7208 4.6.4: permerror at the 11th.
    tree = []
    for level in range(3):
        tree.append(("t%d.amp.test" % level, "TXT", "v=spf1 %s -all" % " ".join(
            ["include:t%d.amp.test" % (level + 1)] * 9)))
    tree.append(("t3.amp.test", "TXT", "v=spf1 a:h0.dns.test ?all"))
    add("dns-include-tree", "joe@t0.amp.test", "permerror",
        "9 includes of 9 includes of 9 includes: 819 include terms, far over "
        "10 (RFC 7208 4.6.4); without a global count this is a DNS/CPU "
        "amplification",
        hosts + tree)
    # mx: at most 10 address lookups per mx mechanism (RFC 7208 4.6.4).
    mx10 = [("mx10.test", "MX", (i, "h%d.dns.test" % i)) for i in range(10)]
    mx11 = [("mx11.test", "MX", (i, "h%d.dns.test" % i)) for i in range(11)]
    add("dns-mx-10-hosts", "joe@mx10.test", "fail",
        "10 MX hosts, none the client: -all fails",
        hosts + mx10 + [("mx10.test", "TXT", "v=spf1 mx -all")])
    add("dns-mx-11-hosts", "joe@mx11.test", "permerror",
        "11 MX hosts: more than 10 address lookups for one mx mechanism",
        hosts + mx11 + [("mx11.test", "TXT", "v=spf1 mx -all")])
    return cases


def _config(workdir: str, address: str) -> str:
    path = os.path.join(workdir, "mxguard.conf")
    with open(path, "w", encoding="ascii") as f:
        f.write("[dns]\nnameserver = %s\ntimeout = 2s\non_error = accept\n"
                "[spf]\nenabled = yes\n" % address)
    return path


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return "signal %d" % num


def _run_case(case: Case, binary: str, conf: str, wrapper: list[str],
              timeout: float) -> tuple[bool, str, str]:
    """Returns (ok, reason, details)."""
    argv = [os.fsencode(a) for a in wrapper] + [
        os.fsencode(binary), b"check", b"-c", os.fsencode(conf), b"--json",
        b"--ip", case.ip.encode(), b"--helo", case.helo, b"--from",
        case.sender, b"-"]
    try:
        proc = subprocess.run(argv, input=b"", capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timed out after %.0f s" % timeout, ""
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    details = "stdout: %s\nstderr: %s" % (out.strip(), err.strip())
    for marker in CRASH_MARKERS:
        if marker in err:
            line = next((l for l in err.splitlines() if marker in l), marker)
            what = ("leak" if "LeakSanitizer" in marker or "lost in" in marker
                    else "memory error")
            return False, "%s: %s (exit %d)" % (what, line.strip()[:160],
                                                 proc.returncode), details
    if proc.returncode < 0:
        return False, "killed by %s" % _signal_name(-proc.returncode), details
    if proc.returncode == 99 and wrapper:
        return False, "valgrind reported errors (exit 99)", details
    if proc.returncode != 0:
        return False, "exit status %d" % proc.returncode, details
    try:
        result = json.loads(out)["spf"]["result"]
    except (ValueError, KeyError, TypeError) as e:
        return False, "no spf.result in the JSON (%s)" % e, details
    if result != case.expected:
        return False, "expected %s, got %s (%s)" % (case.expected, result,
                                                    case.why), details
    return True, "", details


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1].strip(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(DEFAULT_BINARY))
    ap.add_argument("--valgrind", action="store_true",
                    help="run each check under valgrind; fail on its errors")
    ap.add_argument("--valgrind-leaks", action="store_true",
                    help="with --valgrind, also fail on definite leaks")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", action="append", default=[],
                    help="run the cases whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (unbound.conf, log)")
    args = ap.parse_args()

    cases = _cases()
    if args.only:
        cases = [c for c in cases if any(o in c.name for o in args.only)]
    if args.list:
        for c in cases:
            print("%s: expect %s -- %s" % (c.name, c.expected, c.why))
        return 0
    if not cases:
        print("no case matches --only")
        print("0 passed, 0 failed")
        return 2
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("not ok - setup: no executable %s (build it first)" % binary)
        print("0 passed, 1 failed")
        return 2
    wrapper: list[str] = []
    timeout = RUN_TIMEOUT_S
    if args.valgrind or args.valgrind_leaks:
        if shutil.which("valgrind") is None:
            print("not ok - setup: valgrind is not installed")
            print("0 passed, 1 failed")
            return 2
        wrapper = ["valgrind", "-q", "--error-exitcode=99"]
        wrapper += (["--leak-check=full", "--errors-for-leak-kinds=definite"]
                    if args.valgrind_leaks else ["--leak-check=no"])
        timeout = VALGRIND_TIMEOUT_S

    # One zone for every case; a name served by two cases must agree.
    records: dict[tuple, tuple] = {}
    for c in cases:
        for r in c.records:
            key = (r[0].lower(), r[1], repr(r[2]))
            records.setdefault(key, r)

    workdir = tempfile.mkdtemp(prefix="spf_crafted.")
    passed = failed = 0
    try:
        with DnsServer(os.path.join(workdir, "dns")) as dns:
            dns.set_records(list(records.values()))
            try:
                dns.start()
            except DnsServerError as e:
                print("not ok - setup: unbound did not start: %s" % e)
                print("0 passed, 1 failed")
                return 2
            for rec, why in getattr(dns, "skipped", []):
                print("# not served: %r (%s)" % (rec, why))
            conf = _config(workdir, dns.address)
            with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
                futures = [pool.submit(_run_case, c, binary, conf, wrapper, timeout)
                           for c in cases]
                for case, fut in zip(cases, futures):
                    ok, reason, details = fut.result()
                    if ok:
                        passed += 1
                        print("ok - %s" % case.name)
                    else:
                        failed += 1
                        print("not ok - %s: %s" % (case.name, reason))
                    if args.verbose:
                        for line in details.splitlines():
                            print("#   " + line[:2000])
                    sys.stdout.flush()
    finally:
        if args.keep:
            print("# work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
