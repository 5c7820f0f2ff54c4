"""What //tools:bench_gate's samples say: test runs from build events, medians, the tables.

A sample is one timed `bazel test` in one tree (a dict, see bench_gate.gate):
its tree ("this" or "baseline"), case, kind (cold, noop, edit, revert; prime
and settle are untimed), seconds, verdict, the test targets it ran and their
times, and the load average before and after. This module turns build events
into those test figures and samples into the tables the benchmark prints; it
runs no Bazel.
"""

import statistics
from dataclasses import dataclass

from tools import bench_gate_plan as plan

TIMED = ("cold", "noop", "edit", "revert")
TREES = ("this", "baseline")


@dataclass
class TestRun:
    """A test target in one build: how many of its attempts ran and their time."""

    label: str
    ran: int = 0  # attempts executed here (shards, retries), not taken from a cache
    cached: int = 0  # attempts reported from the local or remote cache
    seconds: float = 0.0  # the executed attempts' own time, summed
    status: str = "NO_STATUS"


def _millis(value):
    """An int64 of the JSON build event file (written as a string) in seconds."""
    return float(value or 0) / 1000.0


def test_runs(events):
    """{label: TestRun} from parsed build events (`--build_event_json_file`)."""
    runs = {}
    for event in events:
        ident = event.get("id", {})
        if "testResult" in ident:
            label = ident["testResult"]["label"]
            run = runs.setdefault(label, TestRun(label))
            result = event.get("testResult", {})
            remote = result.get("executionInfo", {}).get("cachedRemotely", False)
            if result.get("cachedLocally") or remote:
                run.cached += 1
            else:
                run.ran += 1
                run.seconds += _millis(result.get("testAttemptDurationMillis"))
        elif "testSummary" in ident:
            label = ident["testSummary"]["label"]
            run = runs.setdefault(label, TestRun(label))
            run.status = event.get("testSummary", {}).get("overallStatus", "NO_STATUS")
    return runs


def reran(runs):
    """The labels of the test targets that executed at least one attempt."""
    return sorted(label for label, run in runs.items() if run.ran)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(this, baseline):
    """this / baseline, or None where either is missing or the baseline is 0."""
    if this is None or not baseline:
        return None
    return this / baseline


def timed(samples, tree, case):
    return [s for s in samples if s["tree"] == tree and s["case"] == case and s["kind"] in TIMED]


def durations(samples, tree):
    """{label: median seconds} of every test target run by the tree's full builds.

    Full builds are the cold runs, or the untimed prime run when cold was not
    measured: there every test runs, so each has a time.
    """
    full = [s for s in samples if s["tree"] == tree and s["kind"] in ("cold", "prime")]
    times = {}
    for s in full:
        for label, seconds in s["test_seconds"].items():
            times.setdefault(label, []).append(seconds)
    return {label: statistics.median(v) for label, v in times.items()}


def slow_tests(times, threshold=plan.SLOW_TEST_S):
    """[(label, seconds)] of the tests over `threshold`, slowest first."""
    return sorted(((k, v) for k, v in times.items() if v > threshold), key=lambda kv: -kv[1])


def _seconds(x):
    if x is None:
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def _count(samples):
    counts = sorted(len(s["reran"]) for s in samples)
    if not counts:
        return "-"
    return str(counts[0]) if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"


def restarted(sample):
    """True for a warm sample whose Bazel server had to start: it was not warm."""
    return sample["kind"] not in ("cold", "prime") and sample.get("server_started", False)


def _verdict(samples):
    if not samples:
        return "-"
    bad = [f"{s['kind']} {s['run']}: {s['verdict']}" for s in samples if s["verdict"] != "pass"]
    bad += [f"{s['kind']} {s['run']}: server restarted" for s in samples if restarted(s)]
    return "pass" if not bad else "; ".join(bad)


def _load(samples):
    loads = [s["load_before"][0] for s in samples] + [s["load_after"][0] for s in samples]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"


def summary_rows(samples, cases):
    """One row per case: medians, ratio and speedup, test targets run, verdicts, load."""
    rows = []
    for case in cases:
        this, base = timed(samples, "this", case), timed(samples, "baseline", case)
        m_this = median(s["seconds"] for s in this)
        m_base = median(s["seconds"] for s in base)
        r = ratio(m_this, m_base)
        rows.append(
            {
                "case": plan.CASE_TITLES[case],
                "this_s": m_this,
                "baseline_s": m_base,
                "ratio": r,
                "speedup": (1 / r) if r else None,
                "tests_this": _count(this),
                "tests_baseline": _count(base),
                "runs": f"{len(this)}/{len(base)}",
                "verdict_this": _verdict(this),
                "verdict_baseline": _verdict(base),
                "load_1min": _load(this + base),
            }
        )
    return rows


def budget_rows(times_this, times_base, budgets=plan.BUDGETS):
    """One row per budgeted test: its budget, its time in each tree, within or over."""
    rows = []
    for label, budget in budgets.items():
        t = times_this.get(label)
        verdict = "not run" if t is None else ("within" if t <= budget else "OVER")
        rows.append(
            {
                "test": label,
                "budget_s": budget,
                "this_s": t,
                "baseline_s": times_base.get(label),
                "verdict": verdict,
            }
        )
    return rows


def _markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(samples, cases, heading):
    """The report as Markdown: the medians, the slow tests, the budgets."""
    rows = summary_rows(samples, cases)
    main = _markdown(
        [
            "case",
            "this (s)",
            "baseline (s)",
            "ratio this/baseline",
            "speedup",
            "test targets run (this / baseline)",
            "runs",
            "verdict (this / baseline)",
            "load 1-min",
        ],
        [
            [
                r["case"],
                _seconds(r["this_s"]),
                _seconds(r["baseline_s"]),
                "-" if r["ratio"] is None else f"{r['ratio']:.2f}",
                "-" if r["speedup"] is None else f"{r['speedup']:.2f}x",
                f"{r['tests_this']} / {r['tests_baseline']}",
                r["runs"],
                f"{r['verdict_this']} / {r['verdict_baseline']}",
                r["load_1min"],
            ]
            for r in rows
        ],
    )
    times_this, times_base = durations(samples, "this"), durations(samples, "baseline")
    parts = [heading, "", main, ""]
    for tree, times in (("this", times_this), ("baseline", times_base)):
        slow = slow_tests(times)
        parts.append(f"Tests over {plan.SLOW_TEST_S:.0f} s in {tree} (full build, median):")
        parts += [f"  {label}  {_seconds(s)} s" for label, s in slow] or ["  none"]
        parts.append("")
    budgets = budget_rows(times_this, times_base)
    parts.append("Budgets (tools/bench_gate_plan.py BUDGETS; judged on this tree):")
    parts.append("")
    parts.append(
        _markdown(
            ["test", "budget (s)", "this (s)", "baseline (s)", "verdict"],
            [
                [
                    b["test"],
                    _seconds(b["budget_s"]),
                    _seconds(b["this_s"]),
                    _seconds(b["baseline_s"]),
                    b["verdict"],
                ]
                for b in budgets
            ],
        )
    )
    return "\n".join(parts) + "\n"


def describe(sample):
    """One line per sample, printed as it is taken."""
    lb, la = sample["load_before"], sample["load_after"]
    return (
        f"{sample['tree']:8} {sample['case']:7} {sample['kind']:6} run {sample['run']}: "
        f"{sample['seconds']:7.2f} s, {sample['verdict']}, {len(sample['reran'])} test targets "
        f"ran; load {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f} -> {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"
        + ("; the server was not warm" if restarted(sample) else "")
    )
