"""What the integration test runners share: TAP-like failure lines, the
sanitizer-report scan of daemon logs, and signals that end a run cleanly.

TestFailure
    The AssertionError a suite's fail() raises with its evidence.
indent(text, limit=40)
    text indented by four spaces, its last limit lines only (a line says
    how many were cut).
report_failure(name, reason)
    Prints "not ok - NAME: first line" and the rest of reason as "#" lines.
sanitizer_reports(workdir, prefix)
    Lines of AddressSanitizer / UBSan / LeakSanitizer reports found in the
    logs under workdir whose file names start with prefix and end in .log
    (at most 40): a sanitizer build reports at the error, or at exit for
    leaks, so read the logs after every daemon has stopped.
exit_on_signal(signum, frame)
    A SIGTERM/SIGHUP handler that raises SystemExit, so that finally:
    blocks and atexit stop every daemon the run started.
run_one(test, env)
    Runs test(env) and prints its "ok"/"not ok" line. Returns "ok",
    "failed" or "interrupted" (a signal or ^C: the caller stops the run).
parse_args(argv)
    (pattern, build, keep) from -k PATTERN, --build DIR (default "build")
    and --keep; other arguments are ignored.
selected(tests, pattern)
    The tests whose names hold pattern (all of them when it is None).
report_check(name, problems)
    Prints "ok - NAME", or "not ok - NAME: ..." with the problems one a
    line; True when there are none.
disabled(*sections)
    Config text turning each [section] off: "[spf]\nenabled = no\n"...
clear_sink(env), clear_sink_and_redis(env)
    before_each hooks: env.sink emptied; and env.redis started again if a
    test stopped it, and flushed.
stop_each(labelled)
    Stops each object of the (label, object) pairs that is not None, all
    of them even when some raise; returns "LABEL: error" for each that
    did: what an Env's stop() returns.
run_suite(env, tests, keep, before_each, stop_checks, log_check)
    A suite's whole run, printing what tests/run_all.py reads: env.start(),
    then each test through run_one (before_each(env) ahead of each; an
    interrupted test ends the run); then each stop_check(env), which stops
    what it checks and returns None (nothing to report) or its problems,
    reported under its function's name; env.stop() (a list of errors,
    printed as "# stopping ..."); the daemon logs under env.workdir
    scanned for sanitizer reports when tests were selected, reported as
    log_check = (NAME, PREFIXES) (None: no scan); the work directory
    removed unless something failed or keep. Ends with "# N.Ns" and
    "N passed, M failed" and returns the exit status: 1 when a test or
    check failed or stopping went wrong. When env.start() raises, that is
    "not ok - environment_starts" and "0 passed, N failed".
"""
import os
import shutil
import signal
import sys
import time
import traceback


class TestFailure(AssertionError):
    pass


def indent(text, limit=40):
    lines = text.rstrip("\n").splitlines()
    if len(lines) > limit:
        lines = ["... (%d lines cut)" % (len(lines) - limit)] + lines[-limit:]
    return "\n".join("    " + l for l in lines)


def report_failure(name, reason):
    first, _, rest = str(reason).partition("\n")
    print("not ok - %s: %s" % (name, first))
    for line in rest.splitlines():
        print("#   " + line)


def sanitizer_reports(workdir, prefix="milter"):
    found = []
    for root, _, files in os.walk(workdir):
        for name in sorted(files):
            if not (name.startswith(prefix) and name.endswith(".log")):
                continue
            with open(os.path.join(root, name), errors="replace") as f:
                for line in f:
                    if ("Sanitizer" in line and "ERROR" in line) or \
                            "runtime error:" in line or "SUMMARY:" in line:
                        found.append("%s: %s" % (name, line.rstrip()))
    return found[:40]


def exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def run_one(test, env):
    try:
        test(env)
    except AssertionError as e:
        report_failure(test.__name__, e)
        return "failed"
    except (KeyboardInterrupt, SystemExit) as e:
        how = ("signal %d" % (e.code - 128) if isinstance(e, SystemExit)
               and isinstance(e.code, int) else type(e).__name__)
        report_failure(test.__name__, "interrupted (%s)" % how)
        return "interrupted"
    except Exception as e:
        report_failure(test.__name__, "%s: %s\n%s" % (
            type(e).__name__, e, traceback.format_exc()))
        return "failed"
    finally:
        sys.stdout.flush()
    print("ok - %s" % test.__name__)
    sys.stdout.flush()
    return "ok"


def parse_args(argv):
    def value(option, default):
        return argv[argv.index(option) + 1] if option in argv else default
    return value("-k", None), value("--build", "build"), "--keep" in argv


def selected(tests, pattern):
    return [t for t in tests if pattern is None or pattern in t.__name__]


def report_check(name, problems):
    if problems:
        report_failure(name, "\n".join(problems))
        return False
    print("ok - %s" % name)
    return True


def disabled(*sections):
    return "".join("[%s]\nenabled = no\n" % s for s in sections)


def stop_each(labelled):
    errors = []
    for label, obj in labelled:
        if obj is None:
            continue
        try:
            obj.stop()
        except Exception as e:
            errors.append("%s: %s" % (label, e))
    return errors


def clear_sink(env):
    env.sink.clear()


def clear_sink_and_redis(env):
    env.sink.clear()
    if not env.redis.ping():
        env.redis.start()
    env.redis.command("FLUSHALL")


def run_suite(env, tests, keep=False, before_each=None, stop_checks=(),
              log_check=("milter_logs_have_no_sanitizer_reports",
                         ("milter",))):
    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGHUP, exit_on_signal)
    started = time.monotonic()
    passed = failed = 0
    try:
        try:
            env.start()
        except Exception as e:
            report_failure("environment_starts", "%s: %s" % (type(e).__name__, e))
            print("# work directory: %s" % env.workdir)
            print("0 passed, %d failed" % (len(tests) or 1))
            return 1
        for test in tests:
            if before_each is not None:
                before_each(env)
            outcome = run_one(test, env)
            if outcome == "ok":
                passed += 1
            else:
                failed += 1
            if outcome == "interrupted":
                break
    finally:
        for check in stop_checks:
            problems = check(env)
            if problems is None:
                continue
            if report_check(check.__name__, problems):
                passed += 1
            else:
                failed += 1
        errors = env.stop()
        for e in errors:
            print("# stopping %s" % e)
        # Sanitizer builds report at the moment of the error or, for
        # leaks, at exit: read every daemon log once all have stopped.
        if log_check is not None and env.workdir and tests:
            name, prefixes = log_check
            reports = []
            for prefix in prefixes:
                reports += sanitizer_reports(env.workdir, prefix)
            if report_check(name, reports):
                passed += 1
            else:
                failed += 1
        if env.workdir:
            if failed or keep or errors:
                print("# work directory kept: %s" % env.workdir)
            else:
                shutil.rmtree(env.workdir, ignore_errors=True)
    print("# %.1fs" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or errors else 0
