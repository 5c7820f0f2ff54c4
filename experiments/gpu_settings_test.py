"""The GPU profiles' device settings: declared on each, applied on CUDA only, reported.

torch's backend flags can be set without a GPU, so apply_gpu_settings runs
for a CUDA device here; the allocator is never started (no GPU), so only the
environment variable it reads is checked.
"""

import os

import pytest
import torch

from experiments import profiles

GPU = [p for p in profiles.PROFILES.values() if p.device == "cuda"]


@pytest.fixture
def backend_flags(monkeypatch):
    """Restores torch's flags after the test; PYTORCH_CUDA_ALLOC_CONF starts unset."""
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    yield
    (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    ) = saved


def test_every_gpu_profile_declares_the_groups_settings():
    assert GPU, "no GPU profile"
    for p in GPU:
        assert (p.tf32, p.cudnn_benchmark, p.cuda_alloc_conf) == (
            True,
            True,
            "expandable_segments:True",
        ), p.name
        assert p.to_dict()["cuda_alloc_conf"] == "expandable_segments:True"  # in the manifest


def test_on_cuda_the_settings_are_applied_and_returned(backend_flags):
    applied = profiles.apply_gpu_settings(profiles.get_profile("h100"), "cuda:0")
    assert applied == {
        "tf32": True,
        "cudnn_benchmark": True,
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.benchmark
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"


def test_an_allocator_setting_already_in_the_environment_is_kept(backend_flags, monkeypatch):
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:False,max_split_size_mb:64")
    applied = profiles.apply_gpu_settings(profiles.get_profile("h100"), "cuda")
    assert applied["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:False,max_split_size_mb:64"
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:64")
    applied = profiles.apply_gpu_settings(profiles.get_profile("h100"), "cuda")
    assert applied["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:64,expandable_segments:True"


def test_on_the_cpu_nothing_is_applied(backend_flags):
    assert profiles.apply_gpu_settings(profiles.get_profile("h100"), "cpu") == {}
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.benchmark
    assert "PYTORCH_CUDA_ALLOC_CONF" not in os.environ
    cpu = profiles.get_profile("cpu")
    assert (cpu.tf32, cpu.cudnn_benchmark, cpu.cuda_alloc_conf) == (False, False, None)
