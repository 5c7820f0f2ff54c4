"""bench_decode: the CPU smoke mode is labelled, its table and plot render; without a GPU
it refuses. The run directory it becomes is experiments/bench_decode.py's (experiments_test)."""

import pytest
import torch

from kernels import bench_decode


def test_cpu_smoke_is_labelled_and_renders(capsys):
    args = bench_decode.parse_args(["--cpu-smoke", "--batches", "1", "2", "--contexts", "8", "33"])
    result = bench_decode.run(args)
    assert "CPU SMOKE" in result["device"]
    assert len(result["rows"]) == 2 * 2 * 2  # models x batches x contexts
    assert all(r["contig_us"] > 0 for r in result["rows"])
    assert bench_decode.table(result).startswith(f"# {result['device']}")
    assert bench_decode.plot(result)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "CPU SMOKE" in capsys.readouterr().out


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on machines without a GPU"
)
def test_without_gpu_says_it_needs_one(tmp_path):
    with pytest.raises(bench_decode.BenchError, match="needs a CUDA or ROCm GPU"):
        bench_decode.run(bench_decode.parse_args(["--out", str(tmp_path)]))


def test_bad_arguments_are_named(capsys):
    with pytest.raises(SystemExit):
        bench_decode.parse_args(["--batches", "0"])
    assert "--batches: 0 is not a batch size" in capsys.readouterr().err


def test_byte_counts():
    # Qwen2.5-7B, B=1, T=8192: K 8 MiB + V 4 MiB + scales 128 KiB + q and out.
    n = 8192 * 4
    assert (
        bench_decode.cache_bytes(1, 8192, 28, 4, 128, False)
        == n * 256 + n * 128 + n * 4 + 2 * 28 * 256 + 4
    )
    assert bench_decode.sdpa_bytes(1, 8192, 28, 4, 128) == 2 * n * 256 + 2 * 28 * 256
