"""What //tools:bench_gate measures: its cases, the one-line edits, the test budgets.

Everything the benchmark is judged by is declared here, once: the cases in the
order they run (CASES), the edit behind each edit case (EDITS: file, the exact
line replaced, the replacement), the budgets of the slowest tests (BUDGETS)
and the time over which a test is named (SLOW_TEST_S). Each edit keeps the
code's behaviour (the tests still pass, so the verdict is the passing path a
researcher waits for) but changes its syntax tree, so it is a change to code,
not to a comment. apply_edit refuses a tree whose file does not hold the line
exactly once; bench_gate checks every edit against both trees before it
measures, and `bazel test //tools:bench_gate_test` against REFERENCE_BASELINE.
"""

import ast
from dataclasses import dataclass


class PlanError(Exception):
    """A case, an edit or a tree the benchmark cannot measure; the message says why."""


@dataclass(frozen=True)
class Edit:
    """A one-line change: in `path`, the line equal to `line` becomes `replacement`."""

    case: str
    path: str
    line: str
    replacement: str
    why: str


EDITS = {
    e.case: e
    for e in (
        Edit(
            "layers",
            "models/gpt2/layers.py",
            "    keep = j <= i",
            "    keep = i >= j",
            "the causal mask's comparison with its operands swapped: the same mask",
        ),
        Edit(
            "trainer",
            "experiments/trainer.py",
            "        fwd = bwd = 0.0",
            "        fwd, bwd = 0.0, 0.0",
            "the per-iteration timers set by a tuple instead of a chained assignment",
        ),
        Edit(
            "scores",
            "pruning/scores.py",
            "    return w.abs()",
            "    return torch.abs(w)",
            "bitter1's |w| through torch.abs instead of the tensor method",
        ),
        Edit(
            "texgen",
            "paper/render/texgen.py",
            "    return fmt(100 * fraction, digits)",
            "    return fmt(fraction * 100, digits)",
            "a percentage's product with its factors swapped: the same float",
        ),
    )
}

# The cases, in the order they run; "all" selects every one.
CASES = ("cold", "noop", *EDITS)
CASE_TITLES = {
    "cold": "cold, venv present",
    "noop": "warm no-op",
    **{case: f"edit {e.path}" for case, e in EDITS.items()},
}

# A test whose own time (the sum of its shards) passes this is named in the report.
SLOW_TEST_S = 10.0

# The slowest tests of the gate and the seconds each may take (its shards
# together, in a cold `bazel test //...` on the 2-core machine). Edit to
# verdict must stay under 60 s (issue 25); trainer_test and experiments_test
# rerun after a trainer edit beside some 30 other targets on 2 cores.
BUDGETS = {
    "//experiments:trainer_test": 15.0,
    "//experiments:experiments_test": 15.0,
    # Nested Bazel: three checkouts, five commands; it reruns only when
    # containers/cache changes, so it weighs on the cold gate alone.
    "//containers/cache:cache_test": 30.0,
    # Compiles the kernels' dry run and collects the GPU tests.
    "//tools:gpu_acceptance_test": 20.0,
}

# The tree issue 25 is measured against: the last commit before its work.
REFERENCE_BASELINE = "7f2583b"

# The lock the default (cpu) venv is built from; its hash names the venv.
LOCK = "third_party/python/requirements_cpu.lock"


def parse_cases(spec):
    """'noop,layers' -> ('noop', 'layers') in CASES order; 'all' -> CASES."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise PlanError(
            f"--cases {spec!r}: name at least one case; accepted: all, {', '.join(CASES)}"
        )
    if names == ["all"]:
        return CASES
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise PlanError(
            f"--cases {spec!r}: unknown case {', '.join(unknown)}; "
            f"accepted: all, {', '.join(CASES)}"
        )
    return tuple(c for c in CASES if c in names)


def apply_edit(text, edit, where):
    """`text` (the file `edit.path` of tree `where`) with the edit's line replaced.

    Refuses (PlanError) when the line is not in the file exactly once, when the
    edited file does not parse, and when the edit leaves its syntax tree as it
    was (a comment or a blank is no change to code).
    """
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == edit.line]
    where = f"{edit.path} in {where}"
    if not hits:
        raise PlanError(
            f"{where} has no line {edit.line!r}, which edit {edit.case!r} replaces; "
            "update EDITS in tools/bench_gate_plan.py to a line both trees hold"
        )
    if len(hits) > 1:
        raise PlanError(
            f"{where} holds the line {edit.line!r} {len(hits)} times (lines "
            f"{', '.join(str(i + 1) for i in hits)}); edit {edit.case!r} must name a line "
            "that occurs once"
        )
    i = hits[0]
    ending = lines[i][len(edit.line) :]
    edited = "".join(lines[:i] + [edit.replacement + ending] + lines[i + 1 :])
    try:
        before, after = ast.dump(ast.parse(text)), ast.dump(ast.parse(edited))
    except SyntaxError as e:
        raise PlanError(
            f"{where}: edit {edit.case!r} leaves a file that does not parse: {e}"
        ) from None
    if before == after:
        raise PlanError(f"{where}: edit {edit.case!r} changes no code (same syntax tree)")
    return edited


def edit_schedule(runs):
    """The kinds of an edit case's timed runs: the edit, its revert, the edit, ...

    Both are one-line changes of the same file and rerun the same tests, so
    each is a sample of edit to verdict. After an odd number of runs the file
    is left edited: True says one untimed run ("settle") must restore the tree
    before another case.
    """
    if runs < 1:
        raise PlanError(f"--runs {runs}: must be at least 1")
    kinds = ["edit" if r % 2 == 0 else "revert" for r in range(runs)]
    return kinds, runs % 2 == 1
