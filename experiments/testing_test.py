"""The test fixtures list the steps and write the specs that Bazel's run actions get.

experiments/testing.py writes a run's spec.json for a test from the steps
Bazel lists (//experiments:steps, experiments/experiments.bzl); Bazel writes
each run's spec.json in experiments/defs.bzl. These tests compare the two on
the gate's runs (//experiments:gate_ratio: steps 0 and 8, 4 iterations, cpu),
and check the declared steps themselves. A plain pytest finds the same files
under bazel-bin/ once they are built, and skips otherwise.
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


def test_every_step_has_a_directory_of_its_own_and_no_bitter_score_pairs_with_sgd():
    declared = testing.declared_steps()
    assert sorted(declared) == sorted(
        [
            "gpt2_ratio_ablation",
            "gpt2_variants",
            "gpt2_pruning",
            "pruning_matrix",
            "kvsplice_cache",
            "bench_decode",
            "gpt2_inference",
        ]
    )
    for experiment, per_profile in declared.items():
        for profile, steps in per_profile.items():
            names = [s["name"] for s in steps] + [a for s in steps for a in s["aliases"]]
            assert len(set(names)) == len(names), (experiment, profile)
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
