"""Every optimizer and every pruning variant through a tiny GPT-2 and LeNet-5.

Each case trains a few steps on a fixed batch with the pruning ramp squeezed
into them: the loss must fall, nothing may turn NaN or Inf, the target
sparsity must be reached (per layer for bitter4), and pruned weights stay zero.
"""

import pytest
import torch

from experiments.ablations import dryrun
from models.gpt2.config import GPT2Config
from models.gpt2.gpt2 import GPT2
from models.vision.lenet import LeNet5
from pruning.optimizers import ADAM_FAMILY, OPTIMIZERS
from pruning.scores import SCORES

LR = {"sgd": 0.05}
CASES = (
    [(opt, None) for opt in OPTIMIZERS if opt != "adamwprune"]
    + [(base, {"variant": "bitter7", "target": 0.5}) for base in ADAM_FAMILY if base != "adamwspam"]
    + [("adamwspam", {"variant": v, "target": 0.5}) for v in SCORES]
    + [("adamw", {"method": m, "target": 0.5}) for m in ("magnitude", "movement")]
)


def case_id(case):
    opt, pruning = case
    if not pruning:
        return opt
    kind = pruning.get("variant") or pruning["method"]
    return f"{opt}-{kind}"


def tiny_gpt2():
    return GPT2(GPT2Config(n_layer=2, n_head=2, n_embd=64, block_size=32, vocab_size=128))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gpt2(case):
    optimizer, pruning = case
    torch.manual_seed(0)
    dryrun.numeric_pass(tiny_gpt2(), optimizer, pruning, lr=LR.get(optimizer, 3e-3))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_lenet5(case):
    optimizer, pruning = case
    torch.manual_seed(0)
    dryrun.numeric_pass_vision(
        LeNet5(), (1, 28, 28), optimizer, pruning, lr=LR.get(optimizer, 3e-3)
    )
