"""//tools:bench_gate without nested Bazel: the edit table, the schedule, the figures.

The edits are applied to the reference baseline's files, read with git where
the history is reachable, and to planted texts. This tree's own files are not
data of this test: a test of the benchmark that read layers.py would fail
whenever a researcher (or the benchmark itself) changed the edited line, and
would rerun after every edit of the four files. bench_gate checks the edits
against both trees before it measures (preflight, tested below). The
measuring loop runs on trees whose `gate` records instead of calling Bazel.
"""

import subprocess
from pathlib import Path

import pytest

from tools import bench_gate, bench_gate_report
from tools import bench_gate_plan as plan

# ---------------------------------------------------------------- the plan


def test_cases_parse_in_plan_order():
    assert plan.parse_cases("all") == plan.CASES
    assert plan.parse_cases("layers, noop") == ("noop", "layers")


@pytest.mark.parametrize("spec", ["", "noop,layer", "cold,all"])
def test_a_bad_case_is_named_with_the_accepted_ones(spec):
    with pytest.raises(plan.PlanError) as e:
        plan.parse_cases(spec)
    assert repr(spec) in str(e.value) and "accepted: all, cold, noop, layers" in str(e.value)


def test_the_schedule_alternates_and_settles_an_odd_count():
    assert plan.edit_schedule(1) == (["edit"], True)
    assert plan.edit_schedule(2) == (["edit", "revert"], False)
    assert plan.edit_schedule(3) == (["edit", "revert", "edit"], True)
    with pytest.raises(plan.PlanError, match="--runs 0"):
        plan.edit_schedule(0)


def changed_lines(before, after):
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


def baseline_text(path):
    """The reference baseline's file, through the history of this checkout, or a skip."""
    repo = Path(__file__).resolve().parent  # runfiles link to the source tree
    proc = subprocess.run(
        ["git", "-C", str(repo), "show", f"{plan.REFERENCE_BASELINE}:{path}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"no history holding {plan.REFERENCE_BASELINE}: {proc.stderr.strip()}")
    return proc.stdout


@pytest.mark.parametrize("case", list(plan.EDITS))
def test_each_edit_changes_one_line_of_the_baseline(case):
    edit = plan.EDITS[case]
    text = baseline_text(edit.path)
    edited = plan.apply_edit(text, edit, plan.REFERENCE_BASELINE)
    assert changed_lines(text, edited) == [(edit.line, edit.replacement)]


EDIT = plan.Edit("x", "pkg/mod.py", "    y = a + b", "    y = b + a", "operands swapped")


def test_a_missing_line_is_refused_naming_file_and_line():
    with pytest.raises(plan.PlanError) as e:
        plan.apply_edit("def f(a, b):\n    y = a - b\n", EDIT, "baseline")
    assert "pkg/mod.py in baseline has no line '    y = a + b'" in str(e.value)


def test_a_line_held_twice_is_refused_with_its_line_numbers():
    text = "def f(a, b):\n    y = a + b\n    y = a + b\n"
    with pytest.raises(plan.PlanError, match=r"2 times \(lines 2, 3\)"):
        plan.apply_edit(text, EDIT, "this")


def test_an_edit_that_changes_no_code_is_refused():
    comment = plan.Edit("x", "m.py", "    y = a + b", "    y = a + b  # same", "a comment")
    with pytest.raises(plan.PlanError, match="changes no code"):
        plan.apply_edit("def f(a, b):\n    y = a + b\n", comment, "this")


def test_the_line_ending_is_kept():
    edited = plan.apply_edit("def f(a, b):\r\n    y = a + b\r\n", EDIT, "this")
    assert edited == "def f(a, b):\r\n    y = b + a\r\n"


# ---------------------------------------------------------------- build events


def result(label, shard=0, millis="1500", cached=False, remote=False):
    return {
        "id": {"testResult": {"label": label, "shard": shard, "run": 1, "attempt": 1}},
        "testResult": {
            "status": "PASSED",
            "cachedLocally": cached,
            "testAttemptDurationMillis": millis,
            "executionInfo": {"cachedRemotely": remote},
        },
    }


def summary(label, status="PASSED"):
    return {"id": {"testSummary": {"label": label}}, "testSummary": {"overallStatus": status}}


EVENTS = [
    result("//a:sharded", 0, "12000"),
    result("//a:sharded", 1, "3500"),
    result("//a:cached", cached=True),
    result("//a:remote", remote=True),
    result("//a:bad", millis=2000),
    summary("//a:sharded"),
    summary("//a:cached"),
    summary("//a:remote"),
    summary("//a:bad", "FAILED"),
]


def test_test_runs_sum_executed_shards_and_skip_cached_ones():
    runs = bench_gate_report.test_runs(EVENTS)
    assert runs["//a:sharded"].ran == 2 and runs["//a:sharded"].seconds == pytest.approx(15.5)
    assert runs["//a:cached"].ran == 0 and runs["//a:cached"].cached == 1
    assert runs["//a:remote"].ran == 0
    assert runs["//a:bad"].status == "FAILED" and runs["//a:bad"].seconds == 2.0
    assert bench_gate_report.reran(runs) == ["//a:bad", "//a:sharded"]


def test_verdict_names_failed_tests_or_the_exit_code():
    assert bench_gate.verdict(0, EVENTS) == "pass"
    assert bench_gate.verdict(3, EVENTS) == "FAILED //a:bad"
    assert bench_gate.verdict(1, []) == "FAILED: bazel exited 1"
    assert bench_gate.verdict(4, []) == "FAILED: bazel exited 4 (no test ran)"


def test_bazel_lines_are_read_from_its_output():
    out = "INFO: Elapsed time: 3.2s, Critical Path: 1.1s\n"
    out += "INFO: Elapsed time: 51.4s, Critical Path: 40.0s\n"
    assert bench_gate.bazel_line(out, "Critical Path: ") == "40.0s"
    assert bench_gate.bazel_line(out, "Elapsed time: ") == "51.4s"
    assert bench_gate.bazel_line("nothing\n", "Critical Path: ") is None


# ---------------------------------------------------------------- figures


def test_median_and_ratio():
    assert bench_gate_report.median([3.0, 1.0, 2.0]) == 2.0
    assert bench_gate_report.median([]) is None
    assert bench_gate_report.ratio(30.0, 120.0) == 0.25
    assert bench_gate_report.ratio(30.0, 0.0) is None
    assert bench_gate_report.ratio(None, 1.0) is None


def sample(tree, case, kind, run, seconds, reran=(), times=None, verdict="pass", load=1.0):
    return {
        "tree": tree,
        "case": case,
        "kind": kind,
        "run": run,
        "seconds": seconds,
        "verdict": verdict,
        "reran": list(reran),
        "test_seconds": times or {},
        "load_before": [load, 0.5, 0.25],
        "load_after": [load + 1, 0.5, 0.25],
    }


SLOW = {"//experiments:trainer_test": 52.0, "//a:quick": 2.0, "//tools:gpu_acceptance_test": 11.0}
FAST = {"//experiments:trainer_test": 9.0, "//a:quick": 2.0}
SAMPLES = [
    sample("baseline", "cold", "cold", 1, 240.0, SLOW, SLOW),
    sample("this", "cold", "cold", 1, 100.0, FAST, FAST, load=3.0),
    sample("baseline", "layers", "edit", 1, 180.0, ["//a:1", "//a:2", "//a:3"]),
    sample("baseline", "layers", "revert", 2, 200.0, ["//a:1", "//a:2", "//a:3"]),
    sample("baseline", "layers", "edit", 3, 190.0, ["//a:1", "//a:2", "//a:3"]),
    sample("baseline", "layers", "settle", 4, 1.0, ["//a:1"]),
    sample("this", "layers", "edit", 1, 60.0, ["//a:1"]),
    sample("this", "layers", "revert", 2, 50.0, ["//a:1", "//a:2"]),
    sample("this", "layers", "edit", 3, 70.0, ["//a:1"], verdict="FAILED //a:1"),
]


def test_rows_hold_medians_ratio_counts_and_verdicts():
    cold, layers = bench_gate_report.summary_rows(SAMPLES, ("cold", "layers"))
    assert (cold["this_s"], cold["baseline_s"], cold["ratio"]) == (100.0, 240.0, 100 / 240)
    assert cold["speedup"] == pytest.approx(2.4)
    assert (cold["tests_this"], cold["tests_baseline"]) == ("2", "3")
    assert cold["load_1min"] == "1.0-4.0"
    assert (layers["this_s"], layers["baseline_s"]) == (60.0, 190.0)  # settle is untimed
    assert (layers["tests_this"], layers["tests_baseline"]) == ("1-2", "3")
    assert layers["verdict_this"] == "edit 3: FAILED //a:1"
    assert layers["verdict_baseline"] == "pass"
    (unmeasured,) = bench_gate_report.summary_rows(SAMPLES, ("noop",))
    assert (unmeasured["this_s"], unmeasured["verdict_this"]) == (None, "-")


def test_slow_tests_are_those_over_ten_seconds_slowest_first():
    times = bench_gate_report.durations(SAMPLES, "baseline")
    assert bench_gate_report.slow_tests(times) == [
        ("//experiments:trainer_test", 52.0),
        ("//tools:gpu_acceptance_test", 11.0),
    ]


def test_budgets_judge_this_tree():
    rows = bench_gate_report.budget_rows(
        {"//experiments:trainer_test": 9.0, "//tools:gpu_acceptance_test": 25.0},
        {"//experiments:trainer_test": 52.0},
    )
    verdicts = {r["test"]: r["verdict"] for r in rows}
    assert set(verdicts) == set(plan.BUDGETS)
    assert verdicts["//experiments:trainer_test"] == "within"
    assert verdicts["//tools:gpu_acceptance_test"] == "OVER"
    assert verdicts["//containers/cache:cache_test"] == "not run"


def test_the_report_prints_the_table_the_slow_tests_and_the_budgets():
    text = bench_gate_report.render(SAMPLES, ("cold", "layers"), "heading")
    assert "| cold, venv present | 100.0 | 240.0 | 0.42 | 2.40x | 2 / 3 |" in text
    assert "| edit models/gpt2/layers.py | 60.0 | 190.0 |" in text
    assert "  //experiments:trainer_test  52.0 s" in text
    assert "  //a:quick" not in text
    assert "| //experiments:trainer_test | 15.0 | 9.00 | 52.0 | within |" in text


def test_a_warm_sample_whose_server_started_is_marked():
    noop = dict(sample("this", "noop", "noop", 2, 5.0), server_started=True)
    cold = dict(sample("this", "cold", "cold", 1, 90.0), server_started=True)
    (row,) = bench_gate_report.summary_rows([noop, cold], ("noop",))
    assert row["verdict_this"] == "noop 2: server restarted"
    assert bench_gate_report.describe(noop).endswith("; the server was not warm")
    assert not bench_gate_report.restarted(cold)


def test_a_sample_line_shows_the_load_before_and_after():
    line = bench_gate_report.describe(SAMPLES[1])
    assert "100.00 s, pass, 2 test targets ran; load 3.00 0.50 0.25 -> 4.00 0.50 0.25" in line


# ---------------------------------------------------------------- the loop


class RecordingTree(bench_gate.Tree):
    """A Tree whose Bazel commands are recorded: what ran, and the edited file's text."""

    def __init__(self, name, workspace, calls, fail_on=None, red_on=None):
        root, logs = workspace / "root", workspace / "logs"
        super().__init__(name, "0" * 40, workspace, root, [], ["//..."], logs, 1)
        self.calls, self.fail_on, self.red_on = calls, fail_on, red_on

    def reset(self):
        self.calls.append((self.name, "reset"))

    def gate(self, case, kind, run):
        if (case, kind, run) == self.fail_on:
            raise bench_gate.BenchError("planted")
        edit = plan.EDITS.get(case)
        text = self.read(edit.path) if edit else ""
        state = "edited" if edit and edit.replacement in text else "original"
        self.calls.append((self.name, case, kind, run, state))
        red = (case, kind, run) == self.red_on
        return sample(self.name, case, kind, run, 1.0, verdict="FAILED //a:b" if red else "pass")


def holding(line):
    """A small module holding `line` once, at the line's own indentation."""
    head = "def f():\n" + ("    if True:\n" if line.startswith(" " * 8) else "")
    return f"{head}{line}\n    return 0\n"


def make_tree(tmp_path, name, calls, fail_on=None):
    workspace = tmp_path / name
    for edit in plan.EDITS.values():
        path = workspace / edit.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(holding(edit.line))
        path.chmod(0o644)
    return RecordingTree(name, workspace, calls, fail_on)


def test_the_loop_alternates_trees_and_edits_and_restores_each_file(tmp_path):
    calls = []
    trees = [make_tree(tmp_path, "this", calls), make_tree(tmp_path, "baseline", calls)]
    before = {t.name: t.read("models/gpt2/layers.py") for t in trees}
    samples = bench_gate.measure(trees, ("cold", "noop", "layers"), 2, say=lambda _: None)
    assert calls == [
        ("this", "reset"),
        ("this", "cold", "cold", 1, "original"),
        ("baseline", "reset"),
        ("baseline", "cold", "cold", 1, "original"),
        ("baseline", "reset"),
        ("baseline", "cold", "cold", 2, "original"),
        ("this", "reset"),
        ("this", "cold", "cold", 2, "original"),
        ("this", "noop", "noop", 1, "original"),
        ("baseline", "noop", "noop", 1, "original"),
        ("baseline", "noop", "noop", 2, "original"),
        ("this", "noop", "noop", 2, "original"),
        ("this", "layers", "edit", 1, "edited"),
        ("baseline", "layers", "edit", 1, "edited"),
        ("baseline", "layers", "revert", 2, "original"),
        ("this", "layers", "revert", 2, "original"),
    ]
    assert len(samples) == 12
    for tree in trees:
        assert tree.read("models/gpt2/layers.py") == before[tree.name]
        assert (tree.workspace / "models/gpt2/layers.py").stat().st_mode & 0o777 == 0o644


def test_an_odd_count_settles_but_the_last_case_and_a_missing_cold_primes(tmp_path):
    calls = []
    trees = [make_tree(tmp_path, "this", calls), make_tree(tmp_path, "baseline", calls)]
    bench_gate.measure(trees, ("trainer", "texgen"), 1, say=lambda _: None)
    assert calls == [
        ("this", "reset"),
        ("this", "cold", "prime", 0, "original"),
        ("baseline", "reset"),
        ("baseline", "cold", "prime", 0, "original"),
        ("this", "trainer", "edit", 1, "edited"),
        ("baseline", "trainer", "edit", 1, "edited"),
        ("this", "trainer", "settle", 2, "original"),
        ("baseline", "trainer", "settle", 2, "original"),
        ("this", "texgen", "edit", 1, "edited"),
        ("baseline", "texgen", "edit", 1, "edited"),
    ]
    for tree in trees:
        assert tree.read("paper/render/texgen.py") == holding(plan.EDITS["texgen"].line)


def test_a_failed_run_still_restores_the_file(tmp_path):
    calls = []
    trees = [
        make_tree(tmp_path, "this", calls),
        make_tree(tmp_path, "baseline", calls, fail_on=("scores", "edit", 1)),
    ]
    with pytest.raises(bench_gate.BenchError, match="planted"):
        bench_gate.measure(trees, ("noop", "scores"), 1, say=lambda _: None)
    assert ("this", "scores", "edit", 1, "edited") in calls  # both files were edited
    for tree in trees:
        assert tree.read("pruning/scores.py") == holding(plan.EDITS["scores"].line)


def test_a_full_build_that_fails_stops_the_benchmark(tmp_path):
    calls = []
    this = make_tree(tmp_path, "this", calls)
    this.red_on = ("cold", "prime", 0)
    trees = [this, make_tree(tmp_path, "baseline", calls)]
    with pytest.raises(bench_gate.BenchError, match="this .*the full build did not pass"):
        bench_gate.measure(trees, ("noop", "layers"), 1, say=lambda _: None)
    assert calls == [("this", "reset"), ("this", "cold", "prime", 0, "original")]


def test_preflight_refuses_a_tree_without_the_line(tmp_path):
    calls = []
    trees = [make_tree(tmp_path, "this", calls), make_tree(tmp_path, "baseline", calls)]
    (trees[1].workspace / "pruning/scores.py").write_text("def f(w):\n    return w\n")
    root = venv_root(tmp_path, trees)
    with pytest.raises(plan.PlanError, match="pruning/scores.py in baseline"):
        bench_gate.preflight(trees, ("noop", "scores"), root)
    assert bench_gate.preflight(trees, ("noop", "layers"), root)["this"].startswith(str(root))


def venv_root(tmp_path, trees):
    """A venv root holding a complete venv for each tree's lock."""
    root = tmp_path / "venvs"
    for tree in trees:
        lock = tree.workspace / plan.LOCK
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(f"# the lock of {tree.name}\n")
        sha = bench_gate.venv.sha256_file(lock)
        marker = root / f"venv-{sha[:16]}-py3.11.2" / bench_gate.venv.MARKER
        marker.parent.mkdir(parents=True)
        marker.write_text(sha + "\n")
    return root


def test_a_missing_or_half_built_venv_is_refused(tmp_path):
    tree = make_tree(tmp_path, "this", [])
    root = venv_root(tmp_path, [tree])
    found = bench_gate.find_venv(tree.workspace, root)
    (found / bench_gate.venv.MARKER).write_text("another lock\n")  # half built
    with pytest.raises(bench_gate.BenchError, match="no complete venv for third_party"):
        bench_gate.find_venv(tree.workspace, root)


def test_arguments_are_checked():
    assert bench_gate.parse_args(["--baseline", "x", "--smoke"]).runs == 1
    assert bench_gate.parse_args(["--baseline", "x"]).runs == 3
    with pytest.raises(SystemExit):
        bench_gate.parse_args(["--baseline", "x", "--runs", "0"])
    with pytest.raises(SystemExit):
        bench_gate.parse_args(["--baseline", "x", "--cases", "warm"])
