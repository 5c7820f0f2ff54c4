"""Dry-run of one RATIO step (KNLP_STEP, set by its Bazel target), or of all of them.

Bazel's dryrun_step_<id> targets set KNLP_STEP so each step is its own cached
test; a plain `pytest experiments/ablations/dryrun_step_test.py` runs every step.
"""

import os

import pytest

from experiments.ablations import dryrun, registry

STEPS = [os.environ["KNLP_STEP"]] if "KNLP_STEP" in os.environ else registry.step_ids()


@pytest.mark.parametrize("step_id", STEPS, ids=lambda s: f"step_{s}")
def test_dryrun_step(step_id):
    result = dryrun.dry_run_step(registry.get(), step_id)
    assert result["losses"][-1] < result["losses"][0]
    assert result["params"] > 50_000_000  # the real-size model, on the meta device
