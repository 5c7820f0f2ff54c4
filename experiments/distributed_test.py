"""DistInfo, and setup_distributed alone and under a torchrun environment (gloo stubbed)."""

from experiments.distributed import DistInfo, setup_distributed


def test_dist_info_and_single_process_setup(monkeypatch):
    assert DistInfo().is_main and not DistInfo().enabled
    assert not DistInfo(rank=1, world_size=2).is_main and DistInfo(world_size=2).enabled
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert setup_distributed("cpu") == (DistInfo(), "cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert setup_distributed("cpu") == (DistInfo(), "cpu")


def test_torchrun_environment_joins_a_gloo_group_on_the_cpu(monkeypatch):
    joined = []
    monkeypatch.setattr("experiments.distributed.dist.is_initialized", lambda: bool(joined))
    monkeypatch.setattr(
        "experiments.distributed.dist.init_process_group", lambda backend: joined.append(backend)
    )
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("LOCAL_RANK", raising=False)  # torchrun sets it; a bare launcher may not
    info, device = setup_distributed("cpu")
    assert (info, device, joined) == (DistInfo(rank=1, local_rank=0, world_size=2), "cpu", ["gloo"])
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert setup_distributed("cpu")[0].local_rank == 1 and joined == ["gloo"]  # joined once
