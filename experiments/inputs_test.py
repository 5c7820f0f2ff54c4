"""What each run's action depends on, read from the gate's built experiment.

`//experiments:gate_ratio` builds RATIO steps 0 (GPT2) and 8 (GPT2_MLA).
Every run's inputs.txt lists exactly the files its action reads
(experiments/defs.bzl), so these tests pin the precision of the key without
running Bazel again: a change to gpt2_mla.py reaches step 8's action only, a
change to layers.py reaches both, and no run reads the report, the
installer, the plots or another step's declaration.
"""

import json
from pathlib import Path

from experiments.testing import gate_runfiles
from tools.bazel.bzl_data import load_bzl

HERE = Path(__file__).resolve().parent
GATE = gate_runfiles() / "experiments" / "gate_ratio" / "cpu-iters4"


def inputs(run: str) -> set[str]:
    lines = (GATE / run / "inputs.txt").read_text().splitlines()
    return {line.split("\t")[0] for line in lines if line}


def test_a_model_file_reaches_only_the_steps_of_its_class():
    step0, step8 = inputs("step00-s1337"), inputs("step08-s1337")
    assert "models/gpt2/gpt2_mla.py" in step8 and "models/gpt2/gpt2_mla.py" not in step0
    for shared in ("models/gpt2/layers.py", "models/gpt2/gpt2.py", "experiments/trainer.py"):
        assert shared in step0 and shared in step8, shared
    others = {p for p in step0 | step8 if p.startswith("models/gpt2/gpt2_")}
    assert others == {"models/gpt2/gpt2_mla.py"}, others


def test_no_run_reads_the_report_the_installer_or_other_declarations():
    for run in ("step00-s1337", "step08-s1337"):
        read = inputs(run)
        for never in (
            "experiments/summary.py",
            "experiments/report.py",
            "experiments/plots.py",
            "experiments/install.py",
            "experiments/tracking.py",
            "experiments/ablations/steps.bzl",
            "experiments/profiles.bzl",
            "experiments/ablations/registry.py",
        ):
            assert never not in read, (run, never)
        assert {"spec.json", "data/shakespeare_char/train.bin", "../pip/venv_info.json"} <= read


def test_each_spec_holds_its_own_declaration():
    steps = load_bzl(HERE / "ablations" / "steps.bzl")
    profiles = load_bzl(HERE / "profiles.bzl")["PROFILES"]
    for run, step_id in (("step00-s1337", 0), ("step08-s1337", 8)):
        spec = json.loads((GATE / run / "spec.json").read_text())
        decl = spec["declaration"]
        assert decl["step"] == steps["RATIO_STEPS"][step_id] and decl["id"] == step_id
        assert decl["variant"] == steps["VARIANTS"][decl["step"]["variant"]]
        assert decl["base"] == steps["RATIO_BASE"]
        assert spec["profile_declaration"] == profiles["cpu"]
        assert spec["overrides"] == {"iters": 4, "time": None} and spec["seed"] == 1337
