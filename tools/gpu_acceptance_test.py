"""tools/gpu_acceptance.sh --dry-run, as the gate runs it, and its argument checks.

The dry run compiles the kernels with nvcc and the flags of GPU_COMPILE_FLAGS
(tools/bazel/gpu_targets.bzl), reads the carried Shakespeare tokens, collects
the GPU tests, parses the benchmark's arguments, and runs the inference, host
sync and loop steps at tiny size on the CPU; it must stay under 60 s on an
idle machine (checked as CPU time, since the gate's machine is shared).

The gate runs it in its two parts (--part, PARTS): tools:gpu_acceptance_test
runs every test here but test_models_dry_run_reads_data_infers_and_trains,
which tools:gpu_acceptance_models_test runs (`-k test_models_dry_run`), so an
edit of the trainer or a model reruns the models' steps and not the compile.
No test runs the whole dry run (`--part all`): its steps are the two parts'
(test_the_parts_are_every_step_once), and Steps refuses a step in neither.
"""

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernels import objcheck
from tools import gpu_acceptance

SCRIPT = Path(gpu_acceptance.__file__).with_name("gpu_acceptance.sh")
# Issue 23's 60 s of CPU for the whole dry run, split. Measured on the 2-core
# machine: kernels 18.2 s quiet; models 9.6 s quiet, 20.8 s beside a cold
# `bazel test //...` (the same work costs twice the CPU on a loaded machine).
CPU_BUDGET_S = {"kernels": 36, "models": 24}


def run(*args):
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env
    )


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dry_run(out, part):
    """`--dry-run --part PART OUT`: the results, the steps by name, wall and CPU seconds."""
    t0, cpu0 = time.monotonic(), _cpu_seconds()
    proc = run("--dry-run", "--part", part, out)
    seconds, cpu = time.monotonic() - t0, _cpu_seconds() - cpu0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "results.json").read_text())
    assert result["dry_run"] and result["part"] == part and result["arch"] == "sm_90"
    steps = {r["step"]: r for r in result["steps"]}
    assert all(r["status"] == "ok" for r in steps.values()), steps
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# GPU acceptance (DRY RUN: nothing was measured)")
    assert f"Only the {part} part's steps ran" in summary
    assert (out / "steps.csv").read_text().splitlines()[0] == "step,status,seconds,detail"
    # The dry run's budget is 60 s on an idle machine, shared by its two parts.
    # The gate's machines are shared, so wall time is reported and CPU time
    # (each part is serial) is what must fit.
    print(f"dry run of {part}: {seconds:.1f} s wall, {cpu:.1f} s CPU")
    assert cpu < CPU_BUDGET_S[part], f"{part} used {cpu:.0f} s of CPU ({seconds:.0f} s wall)"
    return steps, summary


def test_kernels_dry_run_compiles_and_collects(tmp_path):
    out = tmp_path / "out"
    steps, _ = dry_run(out, "kernels")
    assert list(steps) == ["compile", "gpu tests", "bench arguments"]
    assert "kernels/gpu_test.py" in steps["gpu tests"]["detail"]
    code = objcheck.device_code(out / "lib/libdecode_cuda.so", ["decode_kernel"])
    assert {(c.arch, c.elf_arch) for c in code} == {("sm_90", "sm_90")}
    assert any(c.symbols == ["decode_kernel"] for c in code), code


def test_models_dry_run_reads_data_infers_and_trains(tmp_path):
    out = tmp_path / "out"
    steps, summary = dry_run(out, "models")
    assert list(steps) == ["data", "gpt2 inference", "host syncs", "gpt2 training"]
    inference = json.loads((out / "inference/inference.json").read_text())
    assert not inference["measured"] and len(inference["ratios"]) == len(inference["points"])
    assert inference["declared"]["size"] == "124m" and inference["declared"]["dtype"] == "bfloat16"
    assert len({p["class"] for p in inference["points"]}) >= 9
    # The trainer's pending loop reads once per log interval; none in the first.
    syncs = json.loads((out / "syncs/syncs.json").read_text())
    assert syncs["syncs_per_interval"] == [0, 1, 1, 1, 1], syncs
    assert syncs["telemetry"]["cpu/compute_util_avg"] > 0
    train = json.loads((out / "train/train.json").read_text())
    assert not train["measured"] and train["before"]["tokens_per_s"] > 0
    assert train["after"]["tokens_per_s"] > 0 and train["gpu_runtime"] is None
    assert json.loads(steps["data"]["detail"]) == {"train_tokens": 1487682, "val_tokens": 78319}
    assert "## Training loop: before and after" in summary and "| GPT2_MLA_KV | 16 | 2 |" in summary


def test_the_parts_are_every_step_once():
    kernels, models = gpu_acceptance.PARTS["kernels"], gpu_acceptance.PARTS["models"]
    assert not set(kernels) & set(models)
    assert gpu_acceptance.PARTS["all"] == kernels + models


def test_steps_run_their_part_and_refuse_a_step_in_none():
    ran = []
    steps = gpu_acceptance.Steps(gpu_acceptance.PARTS["kernels"])
    steps("compile", lambda: ran.append("compile"))
    steps("data", lambda: ran.append("data"))  # the other part's: not run, not recorded
    assert ran == ["compile"] and [r["step"] for r in steps.rows] == ["compile"]
    with pytest.raises(gpu_acceptance.AcceptanceError, match="step 'lint' is in no part"):
        steps("lint", lambda: None)


def test_compiles_with_the_build_flag_table():
    cmd = gpu_acceptance.nvcc_command("sm_86", Path("x.so"))
    table = gpu_acceptance.bzl_value(gpu_acceptance.TARGETS_BZL, "GPU_COMPILE_FLAGS")["cuda"]
    assert cmd[1 : 1 + len(table["flags"])] == table["flags"]
    assert cmd[1 + len(table["flags"]) :] == [
        "-gencode", "arch=compute_86,code=sm_86", "-o", "x.so", str(gpu_acceptance.KERNEL_SOURCE),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dry-run", "--arch", "sm_42", "{out}"], "--arch sm_42 is not a CUDA GPU target's arch"),
        (["--dry-run", "{full}"], "exists and is not an empty directory"),
        ([], "the following arguments are required: outdir"),
        (  # each accepted part named; whether argparse quotes them differs across Pythons
            ["--part", "gpu", "{out}"],
            r"--part: invalid choice: 'gpu' \(choose from '?all'?, '?kernels'?, '?models'?\)",
        ),
    ],
    ids=["arch", "outdir", "no-outdir", "part"],
)
def test_bad_arguments_are_refused(tmp_path, args, message):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("results of an earlier run")
    proc = run(*[a.format(out=tmp_path / "new", full=full) for a in args])
    assert proc.returncode == 2 and re.search(message, proc.stderr), proc.stderr
    assert (full / "keep.txt").read_text() == "results of an earlier run"


def test_without_a_gpu_the_full_run_says_so(tmp_path):
    proc = run("--part", "kernels", tmp_path / "out")
    if proc.returncode == 0:
        pytest.skip("a GPU is visible: the full run belongs on the GPU host, not in the gate")
    assert proc.returncode == 2 and "no GPU visible" in proc.stderr, proc.stderr


def test_the_benchmark_step_writes_its_files(tmp_path):
    # The full run's decode step, as the GPU host runs it, on the CPU smoke test.
    argv = ["--cpu-smoke", "--models", "gpt2", "--batches", "1", "--contexts", "64"]
    env = dict(os.environ, PYTHONPATH=str(gpu_acceptance.ROOT))
    out = tmp_path / "bench_decode"
    proc = subprocess.run(
        [sys.executable, "-c", gpu_acceptance.BENCH_CODE, str(out), *argv, "--iters", "3"],
        capture_output=True,
        text=True,
        env=env,
        cwd=gpu_acceptance.ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["batch"], r["context"]) for r in result["rows"]] == [("gpt2", 1, 64)]
    assert result["copy_gbps"] is None  # the smoke test's NaN, written as null
    assert (out / "results.csv").read_text().startswith("model,batch,context,")
    assert "CPU SMOKE TEST" in (out / "table.txt").read_text()


def test_syncs_are_counted_per_log_interval():
    # Marks: syncs reported by the end of each of 6 iterations, log interval 3.
    assert gpu_acceptance.syncs_per_interval([0, 0, 0, 1, 1, 1], 3) == [0, 1]
    assert gpu_acceptance.syncs_per_interval([1, 1, 1, 1, 1, 3], 3) == [1, 2]
    assert gpu_acceptance.syncs_per_interval([0, 2, 2, 2, 2], 2) == [2, 0]
