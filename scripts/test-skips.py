#!/usr/bin/env python3
"""After `make test`: the totals of the run and the check of its skips.

libtest counts a test that returned early as passed, so a run where half
the suite skipped would look as green as a full one. Every skip in the
workspace's tests goes through testkit's `skip!`, which appends
`<package>::<binary>::<test>\\t<reason>` to the file named by
$RPC_TEST_SKIPS. This script prints the totals of the cargo test logs
(run, passed, failed, ignored) and the skips per reason, and exits 1 when
a skip is not listed in the skip list (tests/skips.txt) with its reason.

The skip list, one skip a line (`#` starts a comment):

    <test pattern> | <reason>

The pattern matches `<package>::<binary>::<test>` (`*` is any run of
characters, `?` one); the recorded reason must start with the listed one.

    test-skips.py run --log LOG -- COMMAND...   # run, output also appended to LOG
    test-skips.py check --list tests/skips.txt --record SKIPS [--log LOG ...]
"""

import argparse
import collections
import fnmatch
import re
import subprocess
import sys

RESULT = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")


def read_list(path):
    entries = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "|" not in line:
                sys.exit(f"{path}:{n}: expected `<test pattern> | <reason>`, got {line!r}")
            pattern, reason = (s.strip() for s in line.split("|", 1))
            if not pattern or not reason:
                sys.exit(f"{path}:{n}: a listed skip needs both a test pattern and its reason: {line!r}")
            entries.append((pattern, reason))
    return entries


def read_record(path):
    skips = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                test, _, reason = line.partition("\t")
                skips.append((test, reason))
    except FileNotFoundError:
        pass  # no test skipped
    return skips


def totals(logs):
    passed = failed = ignored = 0
    for log in logs:
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = RESULT.search(line)
                if m:
                    passed += int(m.group(1))
                    failed += int(m.group(2))
                    ignored += int(m.group(3))
    return passed, failed, ignored


def listed(entries, test, reason):
    return any(fnmatch.fnmatchcase(test, p) and reason.startswith(r) for p, r in entries)


def run(log, cmd):
    """Run `cmd`, its output (stdout and stderr) to ours and appended to
    `log`; its exit status. (A shell pipe into tee would lose the status
    in make's /bin/sh, which has no pipefail.)"""
    with open(log, "ab") as f:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in p.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
            f.write(line)
        return p.wait()


def check(a):
    entries = read_list(a.list)
    skips = read_record(a.record)
    passed, failed, ignored = totals(a.log)
    if a.log:
        print(f"tests: {passed + failed} run, {passed} passed ({len(skips)} of them skipped), {failed} failed, {ignored} ignored")
    by_reason = collections.Counter(reason for _, reason in skips)
    for reason, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  skipped {n:4d}: {reason}")
    unlisted = [(t, r) for t, r in skips if not listed(entries, t, r)]
    if unlisted:
        print(
            f"FAIL: {len(unlisted)} skip(s) not listed in {a.list} "
            "(list `<test> | <reason>` there if the skip is legitimate on this host, else fix the host or the test):"
        )
        for t, r in unlisted:
            print(f"  {t} | {r}")
        return 1
    print(f"skips: {len(skips)}, all listed in {a.list}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run", help="run a command, its output also appended to --log")
    r.add_argument("--log", required=True)
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    c = sub.add_parser("check", help="print the totals, fail on an unlisted skip")
    c.add_argument("--list", required=True, help="the skip list (tests/skips.txt)")
    c.add_argument("--record", required=True, help="the file $RPC_TEST_SKIPS named during the run")
    c.add_argument("--log", action="append", default=[], help="cargo test output, for the totals")
    a = ap.parse_args()
    if a.verb == "run":
        cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
        if not cmd:
            ap.error("run: no command")
        return run(a.log, cmd)
    return check(a)


if __name__ == "__main__":
    sys.exit(main())
