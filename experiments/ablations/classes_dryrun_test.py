"""Every GPT2* class in models/gpt2, found by convention, through the dry-run.

No class is named here: a new class file in models/gpt2 is collected by
`zoo.discover()` and dry-run at tiny dimensions (training steps, a prune step,
incremental decode matching the full forward) and at 124M on the meta device.
"""

import pytest
import torch

from experiments.ablations import dryrun
from experiments.ablations.step import TINY as STEP_TINY
from models.gpt2 import zoo
from models.gpt2.config import GPT2Config, preset

CLASSES = zoo.discover()
TINY = dict(STEP_TINY, dropout=0.0)  # the dimensions every step's dry-run uses


def tiny_config(cls):
    extra = {"d_latent": 32} if "mla" in cls.FEATURES else {}
    return GPT2Config(**TINY, **extra)


def test_discovery_finds_the_documented_classes():
    documented = {
        "GPT2",
        "GPT2_RA",
        "GPT2_MLA",
        "GPT2_MLA_RA",
        "GPT2_MLA_KV",
        "GPT2_MLA_RA_KV",
        "GPT2_MLA_KV2",
        "GPT2_MLA_KV2M",
        "GPT2_MLA_RA_KVM",
    }
    assert documented <= set(CLASSES)


@pytest.mark.parametrize("name", CLASSES)
def test_numeric_pass_with_pruning(name):
    torch.manual_seed(0)
    model = CLASSES[name](tiny_config(CLASSES[name]))
    pruning = {"variant": "bitter7", "target": 0.5}
    dryrun.numeric_pass(model, "adamwspam", pruning)


@pytest.mark.parametrize("name", CLASSES)
def test_incremental_decode_matches_full_forward(name):
    torch.manual_seed(0)
    model = CLASSES[name](tiny_config(CLASSES[name])).eval()
    idx = torch.randint(0, 256, (2, 24))
    with torch.no_grad():
        full, _ = model(idx)
        logits, _, cache = model(idx[:, :10], use_cache=True)
        pieces = [logits]
        for t in range(10, 24):
            logits, _, cache = model(idx[:, t : t + 1], cache=cache, use_cache=True)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-4, atol=1e-4)
    assert cache["pos"] == 24


@pytest.mark.parametrize("name", CLASSES)
def test_meta_pass_at_124m(name):
    result = dryrun.meta_pass(CLASSES[name], preset("124m", dropout=0.1))
    assert result["params"] > 50_000_000
