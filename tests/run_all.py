#!/usr/bin/env python3
"""Runs every test suite of `make test` and prints one total.

Suites: the cmocka unit binaries, the CLI tests, the DKIM/DMARC tests
(mxguard check against real DNS, messages signed by dkimpy and OpenDKIM),
the integration tests (real Postfix, Redis and DNS on loopback) and the
RFC 7208 SPF conformance suite. Each prints its own results; this adds
them up and ends with the line `N passed, M failed`. Exit status 1 when
any suite failed or could not run.
"""
import argparse
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def run(name: str, argv: list[str]) -> tuple[int, int, bool]:
    """Runs one suite, streaming its output; returns (passed, failed, ok)."""
    print(f"==== {name}: {' '.join(argv)}", flush=True)
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    passed = failed = 0
    seen_total = False
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        m = re.match(r"^(?:\w+: )?(\d+) passed, (\d+) failed", line.strip())
        if m:
            passed, failed, seen_total = int(m[1]), int(m[2]), True
        m = re.match(r"^\[  PASSED  \] (\d+) test", line)
        if m:
            passed += int(m[1]); seen_total = True
        m = re.match(r"^\[  FAILED  \] (\d+) test", line)
        if m:
            failed += int(m[1]); seen_total = True
    rc = proc.wait()
    ok = rc == 0 and seen_total
    if not ok and failed == 0:
        failed = 1   # a suite that crashed or printed no result counts
        print(f"==== {name}: exited {rc} without a clean result")
    return passed, failed, ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    build = os.path.join(ROOT, args.build)
    suites = [(os.path.basename(b), [b]) for b in
              sorted(glob.glob(os.path.join(build, "tests", "test_*")))]
    suites.append(("cli", [PY, "tests/integration/cli_check.py",
                           "--build", args.build]))
    for name in ("policy", "dkim_dmarc", "greylist_cli", "greylist_postfix",
                 "dnsbl", "metrics", "operations", "ratelimit"):
        suites.append((name.replace("_", "-"),
                       [PY, f"tests/integration/{name}.py", "--build",
                        args.build]))
    suites.append(("integration", [PY, "tests/integration/run.py",
                                   "--build", args.build]))
    suites.append(("spf-conformance", [PY, "tests/conformance/spf_suite.py",
                                       "--binary",
                                       os.path.join(args.build, "mxguard"),
                                       "--strict"]))
    suites.append(("spf-crafted", [PY, "tests/conformance/spf_crafted.py",
                                   "--binary",
                                   os.path.join(args.build, "mxguard")]))
    total_p = total_f = known = 0
    results = []
    for name, argv in suites:
        p, f, ok = run(name, argv)
        total_p += p
        if name == "spf-conformance" and ok:
            # --strict passed: every failing scenario is a documented
            # libspf2 limitation, listed with its reason above. They are
            # shown, not counted as failures of mxguard's tests.
            known += f
        else:
            total_f += f
        results.append((name, p, f, ok))
    print("==== summary")
    for name, p, f, ok in results:
        print(f"  {name:28s} {p:4d} passed {f:4d} failed{'' if ok else '  <- FAILED'}")
    if known:
        print(f"  ({known} RFC 7208 scenarios fail for documented libspf2 "
              f"limitations; each is listed above with its reason)")
    print(f"{total_p} passed, {total_f} failed")
    return 0 if all(ok for *_, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
