"""Count Bazel test targets from a build event file: `N passed, N failed`.

    python3 tools/ci_summary.py BEP.json [--skip-tag gpu]

.ci/run passes `--build_event_json_file` to `bazel test` and prints this
program's last line, which is what CI reads. A test target counts as passed
when its summary is PASSED or FLAKY (cached results included), as failed when
the summary is anything else or when it never got one (it failed to build, or
the build stopped before it ran), and as skipped when it carries a tag that
the CI configuration filters out. Failed targets are listed by label.
"""

import argparse
import json
import sys

PASSING = {"PASSED", "FLAKY"}
BUILD_FAILURE = "<the build itself: loading or analysis failed>"


def summarize(events, skip_tags=("gpu",)):
    """(passed, failed, skipped) label lists from parsed build events.

    A test target is skipped when it never ran and either Bazel skipped it as
    incompatible with the configuration or it carries a tag the CI filters
    out; a tagged test that did run counts by its result. When the build
    failed before any test target could be counted as failed (a package that
    does not load, the Python toolchain that cannot be built, no events at
    all), one pseudo-target stands for that failure.
    """
    tests, tagged, incompatible, status = set(), set(), set(), {}
    build_ok = None
    for event in events:
        ident = event.get("id", {})
        if "targetConfigured" in ident:
            configured = event.get("configured", {})
            if not configured.get("targetKind", "").endswith("_test rule"):
                continue
            label = ident["targetConfigured"]["label"]
            tests.add(label)
            if set(configured.get("tag", [])) & (set(skip_tags) | {"manual"}):
                tagged.add(label)
        elif "targetCompleted" in ident:
            if event.get("aborted", {}).get("reason") == "SKIPPED":
                incompatible.add(ident["targetCompleted"]["label"])
        elif "testSummary" in ident:
            label = ident["testSummary"]["label"]
            status[label] = event.get("testSummary", {}).get("overallStatus", "NO_STATUS")
        elif "buildFinished" in ident:
            finished = event.get("finished", {})
            build_ok = finished.get("overallSuccess", False) or (
                finished.get("exitCode", {}).get("code", 1) == 0
            )
    skipped = {t for t in tests if t not in status and (t in tagged or t in incompatible)}
    counted = tests - skipped
    passed = sorted(t for t in counted if status.get(t) in PASSING)
    failed = sorted(t for t in counted if status.get(t) not in PASSING)
    if not build_ok and not failed:
        failed.append(BUILD_FAILURE)
    return passed, failed, sorted(skipped)


def read_events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bep")
    parser.add_argument(
        "--skip-tag",
        action="append",
        help="a tag whose tests count as skipped when they did not run (default: gpu)",
    )
    args = parser.parse_args(argv)
    try:
        events = read_events(args.bep)
    except (OSError, json.JSONDecodeError) as e:
        print(f"ci_summary: cannot read build events from {args.bep}: {e}", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    passed, failed, skipped = summarize(events, args.skip_tag or ["gpu"])
    for label in failed:
        print(f"FAILED {label}")
    print(f"{len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
