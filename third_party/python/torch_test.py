"""The venv's torch is the build the lock pins, and autograd works in it.

This is also the reference "one py_test that imports torch" whose cost
tools/bench_workspace.py measures.
"""

import json
import os
from pathlib import Path

import torch

from third_party.python.lock_test import pins_in

HERE = Path(__file__).resolve().parent


def active_lock():
    """The lock the running venv was built from (cpu unless --config says otherwise)."""
    accelerator = os.environ.get("KNLP_ACCELERATOR", "cpu")
    info = Path("../pip/venv_info.json")
    if info.exists():
        accelerator = json.loads(info.read_text())["accelerator"]
    return HERE / f"requirements_{accelerator}.lock"


def test_torch_is_the_pinned_build():
    pinned = pins_in(active_lock().read_text())["torch"][0]
    assert torch.__version__ == pinned


def test_autograd_step_lowers_a_quadratic():
    w = torch.tensor([3.0, -2.0], requires_grad=True)
    loss = (w**2).sum()
    loss.backward()
    with torch.no_grad():
        w -= 0.25 * w.grad
    assert torch.allclose(w, torch.tensor([1.5, -1.0]))
    assert (w**2).sum() < loss
