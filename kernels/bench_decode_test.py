"""bench_decode: the CPU smoke mode writes its labelled outputs; without a GPU it refuses."""

import json

import pytest
import torch

from experiments import results
from kernels import bench_decode


def test_cpu_smoke_writes_labelled_outputs(tmp_path, capsys):
    rc = bench_decode.main(
        ["--cpu-smoke", "--batches", "1", "2", "--contexts", "8", "33", "--out", str(tmp_path)]
    )
    assert rc == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert "CPU SMOKE" in result["device"]
    assert len(result["rows"]) == 2 * 2 * 2  # models x batches x contexts
    assert all(r["contig_us"] > 0 for r in result["rows"])
    assert (tmp_path / "results.csv").read_text().startswith("model,batch,context,")
    assert (tmp_path / "decode_bandwidth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "CPU SMOKE" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert results.missing_fields(manifest) == [] and manifest["experiment"] == "bench_decode"
    assert manifest["command"] == (
        "bazel run //kernels:bench_decode -- --cpu-smoke --batches 1 2 --contexts 8 33 "
        f"--out {tmp_path}"
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["measured"] is False and summary["complete"] is True
    assert summary["device"] == result["device"] and summary["copy_gbps"] is None  # NaN
    assert summary["metric"] == "contig_gbps" and summary["lower_is_better"] is False
    assert summary["runs"] == result["rows"] and summary["run_id"] == tmp_path.name
    assert not (tmp_path / "val_curves.csv").exists()


def test_default_run_directory_is_under_results(tmp_path, monkeypatch):
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(tmp_path))
    assert (
        bench_decode.main(["--cpu-smoke", "--models", "gpt2", "--batches", "1", "--contexts", "8"])
        == 0
    )
    (run,) = (tmp_path / "results" / "bench_decode").iterdir()
    assert run.name.endswith("Z-cpu") and (run / "summary.json").exists()
    assert json.loads((run / "manifest.json").read_text())["run_id"] == run.name


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on machines without a GPU"
)
def test_without_gpu_says_it_needs_one(tmp_path):
    with pytest.raises(bench_decode.BenchError, match="needs a CUDA or ROCm GPU"):
        bench_decode.main(["--out", str(tmp_path)])


def test_bad_arguments_are_named(capsys):
    with pytest.raises(SystemExit):
        bench_decode.main(["--batches", "0"])
    assert "--batches: 0 is not a batch size" in capsys.readouterr().err


def test_byte_counts():
    # Qwen2.5-7B, B=1, T=8192: K 8 MiB + V 4 MiB + scales 128 KiB + q and out.
    n = 8192 * 4
    assert (
        bench_decode.cache_bytes(1, 8192, 28, 4, 128, False)
        == n * 256 + n * 128 + n * 4 + 2 * 28 * 256 + 4
    )
    assert bench_decode.sdpa_bytes(1, 8192, 28, 4, 128) == 2 * n * 256 + 2 * 28 * 256
