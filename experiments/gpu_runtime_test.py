"""The GPU profiles' CUDA settings: declared on each, applied by gpu_runtime.apply, returned.

torch's backend flags can be set without a GPU, so `apply` runs here in
full; the allocator is never started (no GPU), so only the environment
variable it reads is checked.
"""

import os

import pytest
import torch

from experiments import gpu_runtime, profiles

GROUP = {"tf32": True, "cudnn_benchmark": True, "cuda_alloc_conf": "expandable_segments:True"}


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


def test_every_gpu_profile_declares_the_groups_settings_and_the_cpu_none():
    declared = profiles.declared()
    gpu = [p for p in declared.values() if p.device == "cuda"]
    assert gpu, "no GPU profile"
    for p in gpu:
        assert p.gpu_runtime == GROUP, p.name
        assert p.to_dict()["gpu_runtime"] == GROUP  # the manifest's config holds it
    assert declared["cpu"].gpu_runtime is None


def test_a_gpu_profiles_settings_are_applied_and_returned(backend_flags, monkeypatch):
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:64")  # the user's
    applied = gpu_runtime.apply(profiles.get_profile("h100").gpu_runtime)
    assert applied == GROUP
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.benchmark
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"


def test_settings_off_are_set_off(backend_flags):
    torch.backends.cudnn.benchmark = True
    applied = gpu_runtime.apply({"tf32": False, "cudnn_benchmark": False})
    assert applied == {"tf32": False, "cudnn_benchmark": False, "cuda_alloc_conf": None}
    assert not torch.backends.cudnn.benchmark and not torch.backends.cuda.matmul.allow_tf32
    assert "PYTORCH_CUDA_ALLOC_CONF" not in os.environ


def test_the_cpu_profile_applies_nothing(backend_flags):
    assert gpu_runtime.apply(profiles.get_profile("cpu").gpu_runtime) is None
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.benchmark
    assert "PYTORCH_CUDA_ALLOC_CONF" not in os.environ


def test_an_unknown_setting_is_refused_with_the_accepted_ones(backend_flags):
    with pytest.raises(ValueError) as e:
        gpu_runtime.apply({"tf32": True, "cudnn_benchmrk": True})
    assert str(e.value) == (
        "gpu_runtime: unknown settings ['cudnn_benchmrk']; accepted: "
        "tf32, cudnn_benchmark, cuda_alloc_conf"
    )
    assert not torch.backends.cuda.matmul.allow_tf32  # nothing applied


def test_a_started_allocator_is_given_the_setting(backend_flags, monkeypatch):
    given = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda.memory, "_set_allocator_settings", given.append)
    gpu_runtime.apply(GROUP)
    assert given == ["expandable_segments:True"]
