"""Dry-run of every RATIO step of steps.bzl: the numeric pass and the meta pass.

The Bazel target `dryrun_test` runs all 19 steps, with the classes' and the
pruners' dry runs, in a few shards: a step's dry run costs about 1.4 s once
torch is imported (2 s), so 19 processes of one step each spent most of their
time importing (tools/README.md has the figures). Each step is still its own
test case, named step_<id>:

    bazel test //experiments/ablations:dryrun_test --test_arg=-k --test_arg=step_8
"""

import pytest

from experiments.ablations import dryrun, registry


@pytest.mark.parametrize("step_id", registry.step_ids(), ids=lambda s: f"step_{s}")
def test_dryrun_step(step_id):
    result = dryrun.dry_run_step(registry.get(), step_id)
    assert result["losses"][-1] < result["losses"][0]
    assert result["params"] > 50_000_000  # the real-size model, on the meta device
