"""What the integration test runners share: TAP-like failure lines, the
sanitizer-report scan of daemon logs, and signals that end a run cleanly.

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
"""
import os
import sys
import traceback


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
