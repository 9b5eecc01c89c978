#!/usr/bin/env python3
"""Summary of a ctest run for scripts/test.sh: every skipped test with its label and
reason, the tests skipped inside binaries that passed, and the verdict on required
components.

  test_summary.py BUILD_DIR JUNIT_XML [--require slurm,gpu,...]

Reasons are the "SKIPPED: ..." lines the tests print (tests/common/gtest_status.h for the
gtest binaries, skip_test in tests/e2e/lib.sh for the scripts). A component named in
--require (STRATA_REQUIRE) is a ctest label: the run fails when a test with that label was
skipped, or when no test carries it. Exit status: 0, or 1 when a requirement is not met.
"""
import argparse
import json
import subprocess
import sys
import xml.etree.ElementTree as ET


def labels_of(build):
    out = subprocess.run(["ctest", "--test-dir", build, "--show-only=json-v1"], capture_output=True,
                         text=True, check=True).stdout
    labels = {}
    for t in json.loads(out).get("tests", []):
        props = {p["name"]: p["value"] for p in t.get("properties", [])}
        labels[t["name"]] = props.get("LABELS", [])
    return labels


def skip_lines(output):
    return [line[len("SKIPPED: "):].strip() for line in (output or "").splitlines() if line.startswith("SKIPPED: ")]


def grouped(reasons):
    """'Suite.Case: why' lines of one test, as 'why (N cases)' per distinct reason."""
    by_reason = {}
    for r in reasons:
        case, sep, why = r.partition(": ")
        if not sep or " " in case:  # a script's own reason, not a gtest case
            case, why = "", r
        by_reason.setdefault(why, []).append(case)
    return "; ".join(f"{why} ({len(cases)} case{'s' if len(cases) > 1 else ''})" if any(cases) else why
                     for why, cases in by_reason.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build")
    ap.add_argument("junit")
    ap.add_argument("--require", default="", help="comma-separated labels whose tests must not skip")
    args = ap.parse_args()
    labels = labels_of(args.build)
    required = [r.strip() for r in args.require.split(",") if r.strip()]

    skipped, partial = [], []
    for case in ET.parse(args.junit).getroot().iter("testcase"):
        name, out = case.get("name"), case.findtext("system-out") or ""
        reasons = skip_lines(out)
        if case.get("status") == "skipped" or case.find("skipped") is not None:
            skipped.append((name, reasons or ["(the test gave no reason)"]))
        elif reasons and case.get("status") == "run" and case.find("failure") is None:
            partial.append((name, reasons))

    tag = lambda name: f"{name} [{', '.join(labels.get(name, [])) or 'no label'}]"
    if skipped:
        print(f"test: {len(skipped)} test(s) skipped:")
        for name, reasons in skipped:
            print(f"  {tag(name)}: {grouped(reasons)}")
    if partial:
        print(f"test: {len(partial)} test(s) passed with some cases skipped:")
        for name, reasons in partial:
            print(f"  {tag(name)}: {grouped(reasons)}")
    if not skipped and not partial:
        print("test: nothing skipped")

    problems = []
    for comp in required:
        have = [n for n, ls in labels.items() if comp in ls]
        if not have:
            problems.append(f"{comp}: no test carries the label '{comp}'")
        for name, _ in skipped:
            if comp in labels.get(name, []):
                problems.append(f"{comp}: {name} was skipped, but STRATA_REQUIRE says this machine has {comp}")
    for p in problems:
        print(f"test: FAILED requirement {p}", file=sys.stderr)
    if required and not problems:
        print(f"test: required components ran: {', '.join(required)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
