"""The test fixtures list the steps and write the specs that Bazel's run actions get.

experiments/testing.py reads the declarations in Python to write a run's
spec.json for a test; Bazel lists the same steps from experiments/experiments.bzl
and writes each run's spec.json in experiments/defs.bzl. These tests compare the
two: every experiment's steps on every profile (//experiments:declared_steps),
and the specs of the gate's runs (//experiments:gate_ratio: steps 0 and 8,
4 iterations, cpu). A plain pytest finds the same files under bazel-bin/ once
they are built, and skips otherwise.
"""

import json
import os

import pytest

from experiments import testing
from experiments.record import RunSpec


def built(path: str) -> str:
    """A Bazel output: in the test's runfiles, or under the checkout's bazel-bin/."""
    for candidate in (path, os.path.join("bazel-bin", path)):
        if os.path.exists(candidate):
            return candidate
    pytest.skip(f"{path} is not built: bazel build //experiments:declared_steps :gate_ratio")


def test_steps_are_the_ones_experiments_bzl_declares():
    with open(built("experiments/declared_steps.json")) as f:
        declared = json.load(f)
    assert sorted(declared) == sorted(testing.EXPERIMENTS)
    for experiment, per_profile in declared.items():
        for profile, steps in per_profile.items():
            want = [{k: v for k, v in s.items() if k != "program"} for s in steps]
            assert testing.steps(experiment, profile) == want, (experiment, profile)
            names = [s["name"] for s in steps] + [a for s in steps for a in s["aliases"]]
            assert len(set(names)) == len(names), (experiment, profile)  # one directory each
    for cell in declared["pruning_matrix"]["cpu"] + declared["pruning_matrix"]["h100"]:
        d = cell["declaration"]  # AdamWPrune scores from Adam state: never with sgd
        assert not (d["method"].startswith("bitter") and d["optimizer"] == "sgd"), cell["name"]


@pytest.mark.parametrize("step", ["0", "8"])
def test_run_spec_is_the_one_bazel_writes(step):
    spec = testing.run_spec("gpt2_ratio_ablation", step, iters=4)
    path = built(f"experiments/gate_ratio/cpu-iters4/{spec['run']}/spec.json")
    with open(path) as f:
        assert spec == json.load(f)
    assert RunSpec.from_dict(spec).run == f"step0{step}-s1337"


def test_a_measurement_takes_no_seed_and_an_unknown_step_lists_the_known():
    spec = testing.run_spec("kvsplice_cache", "GPT2_MLA", seed=7)
    assert (spec["run"], spec["seed"]) == ("GPT2_MLA", None)
    with pytest.raises(ValueError, match="no step 'step19'; accepted: step00, step01"):
        testing.run_spec("gpt2_ratio_ablation", "step19")
