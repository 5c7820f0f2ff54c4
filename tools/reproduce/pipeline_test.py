"""The pipeline on a CPU: real doctor, skips with reasons, resume, atomic stages, gates.

Where a stage needs a GPU, a test replaces it with a function that writes a
test fixture (synthetic metrics generated here from chosen values); those
records are fixtures for the report and the gates, never results.
"""

import json
import subprocess

import numpy as np
import pytest

from experiments.record import SCHEMA, Manifest, missing_fields
from tools.reproduce import cell, fork_pins, reproduce, saturation, stages
from tools.reproduce.pipeline import STAGES, Pipeline, PipelineError, Skip, StageContext

STAGE_SETS = reproduce.load_stage_sets()
CPU_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}


def stage_files(run_dir, stage):
    return sorted(p.name for p in (run_dir / "stages" / stage).iterdir())


def fixture_run_stage(v_rel_err=0.05, noise=0.02):
    """A stand-in for the GPU run stage: gate metrics and a saturation sweep, synthetic."""

    def run(ctx):
        ctx.require_done("build")
        ctx.metric(metric="flashinfer_decode_rel_err", value=0.031, fixture=True)
        ctx.metric(metric="flashinfer_prefill_rel_err", value=0.044, fixture=True)
        ctx.metric(metric="vllm_writer_k_mismatched_bits", value=0, fixture=True)
        ctx.metric(metric="vllm_writer_v_rel_err", value=v_rel_err, fixture=True)
        rng = np.random.default_rng(7)
        for t, (s_max, k_m) in {2048: (5200.0, 4.0), 8192: (3100.0, 7.0)}.items():
            for b in (1, 2, 4, 8, 16, 32):
                value = saturation.saturation(b, s_max, k_m) * (1 + noise * rng.standard_normal())
                ctx.metric(metric="decode_tokens_per_s", batch=b, context=t, value=float(value))

    return run


def ok(ctx):
    ctx.log(f"{ctx.stage} ran")


def fake_stages(**overrides):
    functions = dict(stages.STAGE_FUNCTIONS, doctor=ok, fetch=ok, build=ok, run=fixture_run_stage())
    functions.update(overrides)
    return functions


def test_cpu_run_skips_with_reasons_and_still_reports(tmp_path, capsys):
    code = reproduce.main(
        ["--stage-set=decode", "--run-id=cpu", f"--results-root={tmp_path}"], CPU_ENV
    )
    assert code == 0, capsys.readouterr()
    run_dir = tmp_path / "cpu"
    for stage in STAGES:
        files = stage_files(run_dir, stage)
        assert {"metrics.jsonl", "stdout.log", "stderr.log", "status.json"} <= set(files), stage
        assert ("DONE" in files) == (stage in ("doctor", "report")), stage
    status = {s: json.loads((run_dir / "stages" / s / "status.json").read_text()) for s in STAGES}
    assert status["fetch"]["reason"]["code"] in ("forks_unresolved", "no_workspace")
    assert status["build"]["reason"] == {
        "code": "upstream_not_done",
        "detail": status["build"]["reason"]["detail"],
        "stage": "fetch",
    }
    assert status["upload"]["reason"]["code"] == "no_upload_target"
    # The skip is in the stage's metrics too, as the last record.
    last = json.loads((run_dir / "stages/fetch/metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "stage_end" and last["status"] == "skipped"
    doctor = [json.loads(line) for line in (run_dir / "stages/doctor/metrics.jsonl").open()]
    checks = {r["check"] for r in doctor if "check" in r}
    assert {"gpu", "nvcc", "torch", "fork_pins", "disk_free_gib"} <= checks
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verdict"] == "incomplete"
    assert {g["status"] for g in report["gates"]} == {"not_evaluated", "not_applicable"}
    run_reason = status["run"]["reason"]["code"]  # no_gpu here; upstream_not_done on a GPU host
    assert run_reason in ("no_gpu", "upstream_not_done")
    assert f"run stage {run_reason}" in (run_dir / "report.md").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stage_set"] == "decode" and set(manifest["forks"]) == {
        "flashinfer",
        "lmcache",
        "vllm",
    }
    assert manifest["stages"]["doctor"]["status"] == "ok"
    # The run record's Manifest (experiments/record.py), no host name, no run actions.
    assert missing_fields(manifest) == [] and "host" not in manifest
    assert Manifest.from_dict(manifest).runs == {} and manifest["schema"] == SCHEMA
    assert manifest["config"] == STAGE_SETS["decode"]
    assert manifest["experiment"] == "decode" and manifest["run_id"] == "cpu"
    assert manifest["command"] == (
        f"bazel run //tools/reproduce:decode -- --stage-set=decode --run-id=cpu "
        f"--results-root={tmp_path}"
    )


def test_rerun_resumes_at_the_first_stage_without_done(tmp_path):
    calls = []
    attempts = {"build": 0}

    def counted(ctx):
        calls.append(ctx.stage)

    def flaky_build(ctx):
        calls.append("build")
        attempts["build"] += 1
        ctx.metric(attempt=attempts["build"])
        if attempts["build"] == 1:
            raise RuntimeError("compiler crashed")

    functions = fake_stages(doctor=counted, fetch=counted, build=flaky_build)
    spec = STAGE_SETS["decode-sat"]
    pipeline = Pipeline("decode-sat", spec, tmp_path / "r1", functions, CPU_ENV)
    first = pipeline.run()
    assert list(first) == ["doctor", "fetch", "build"] and first["build"]["status"] == "failed"
    assert "compiler crashed" in (tmp_path / "r1/stages/build/stderr.log").read_text()
    assert not (tmp_path / "r1/stages/build/DONE").exists()
    assert not (tmp_path / "r1/stages/run").exists()  # a failure stops the pipeline
    doctor_done = (tmp_path / "r1/stages/doctor/DONE").stat().st_mtime_ns

    second = Pipeline("decode-sat", spec, tmp_path / "r1", functions, CPU_ENV).run()
    assert list(second) == ["build", "run", "report", "upload"]
    assert calls == ["doctor", "fetch", "build", "build"]
    assert (tmp_path / "r1/stages/doctor/DONE").stat().st_mtime_ns == doctor_done
    assert (
        json.loads((tmp_path / "r1/stages/build/metrics.jsonl").open().readline())["attempt"] == 2
    )
    assert not list((tmp_path / "r1/stages").glob(".*"))  # no staging directory left behind
    manifest = json.loads((tmp_path / "r1/manifest.json").read_text())
    assert [i["resumed_at"] for i in manifest["invocations"]] == ["doctor", "build"]


def test_sample_data_pass_the_gates_and_the_fit_is_reported(tmp_path):
    spec = STAGE_SETS["decode-sat"]
    Pipeline("decode-sat", spec, tmp_path / "s", fake_stages(), CPU_ENV).run()
    report = json.loads((tmp_path / "s/report.json").read_text())
    gates = {g["gate"]: g for g in report["gates"]}
    assert gates["gsm8k"]["status"] == "not_applicable"
    assert {g["status"] for n, g in gates.items() if n != "gsm8k"} == {"pass"}
    assert report["verdict"] == "pass"
    fits = report["saturation"]["fits"]
    assert fits["2048"]["s_max"] == pytest.approx(5200.0, rel=0.1)
    assert gates["saturation_fit"]["value"] == min(f["r2"] for f in fits.values())
    assert "| 2048 |" in (tmp_path / "s/report.md").read_text()


def test_a_gate_over_its_threshold_fails_the_run(tmp_path):
    functions = fake_stages(run=fixture_run_stage(v_rel_err=0.09))
    code = reproduce.main(
        ["--stage-set=decode", "--run-id=bad", f"--results-root={tmp_path}"], CPU_ENV, functions
    )
    assert code == 2
    report = json.loads((tmp_path / "bad/report.json").read_text())
    (gate,) = [g for g in report["gates"] if g["gate"] == "vllm_writer_v"]
    assert gate["status"] == "fail" and gate["value"] == 0.09
    assert report["verdict"] == "fail"


def test_a_missing_metric_fails_its_gate_rather_than_passing(tmp_path):
    def partial(ctx):
        ctx.metric(metric="flashinfer_decode_rel_err", value=0.01, fixture=True)

    Pipeline(
        "decode", STAGE_SETS["decode"], tmp_path / "p", fake_stages(run=partial), CPU_ENV
    ).run()
    gates = {g["gate"]: g for g in json.loads((tmp_path / "p/report.json").read_text())["gates"]}
    assert gates["flashinfer_decode"]["status"] == "pass"
    assert gates["vllm_writer_v"]["status"] == "fail"
    assert "recorded no vllm_writer_v_rel_err" in gates["vllm_writer_v"]["reason"]


def test_a_failed_rerun_keeps_no_half_written_stage(tmp_path):
    def skip_fetch(ctx):
        raise Skip("forks_unresolved", "fixture")

    spec = STAGE_SETS["decode"]
    Pipeline("decode", spec, tmp_path / "a", fake_stages(fetch=skip_fetch), CPU_ENV).run()
    assert (tmp_path / "a/stages/fetch/status.json").exists()

    def crash(ctx):
        ctx.metric(partial=True)
        raise KeyboardInterrupt  # killed mid-stage: not an Exception, nothing is renamed

    with pytest.raises(KeyboardInterrupt):
        Pipeline("decode", spec, tmp_path / "a", fake_stages(fetch=crash), CPU_ENV).run()
    status = json.loads((tmp_path / "a/stages/fetch/status.json").read_text())
    assert status["reason"]["detail"] == "fixture"  # the previous result is intact
    assert "partial" not in (tmp_path / "a/stages/fetch/metrics.jsonl").read_text()


def test_a_run_cannot_be_resumed_under_another_stage_set(tmp_path):
    Pipeline("decode", STAGE_SETS["decode"], tmp_path / "x", fake_stages(), CPU_ENV).run()
    with pytest.raises(PipelineError, match="is a 'decode' run"):
        Pipeline(
            "decode-sat", STAGE_SETS["decode-sat"], tmp_path / "x", fake_stages(), CPU_ENV
        ).run()


def test_upload_copies_the_run(tmp_path):
    env = dict(CPU_ENV, KNLP_RESULTS_UPLOAD=str(tmp_path / "archive"))
    Pipeline("decode", STAGE_SETS["decode"], tmp_path / "runs/u", fake_stages(), env).run()
    assert (tmp_path / "archive/u/report.json").exists()
    assert (tmp_path / "runs/u/stages/upload/DONE").exists()


def test_bad_run_id_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        reproduce.main(
            ["--stage-set=decode", "--run-id=../up", f"--results-root={tmp_path}"], CPU_ENV
        )
    assert "--run-id '../up'" in capsys.readouterr().err


def test_every_stage_set_has_a_program_for_each_measurement():
    for name, spec in STAGE_SETS.items():
        for measurement in spec["measurements"]:
            assert (stages.MEASURE_DIR / f"{measurement}.py").exists(), (name, measurement)


FAKE_BAZEL = """#!/bin/sh
echo "$@" >> "$FAKE_BAZEL_LOG"
if [ "$1" = info ]; then echo "$FAKE_OUTPUT_BASE"; fi
"""


def resolved_lock(commit):
    lock = fork_pins.load_lock()
    lock = json.loads(json.dumps(lock))
    for entry in lock["forks"].values():
        entry["commit"] = commit
        for sub in entry["submodules"].values():
            sub.update(commit=commit, url="https://example.invalid/sub.git")
    return lock


@pytest.mark.parametrize("fetched", ["same", "other"])
def test_fetch_stage_builds_the_pins_and_checks_the_fetched_commits(tmp_path, monkeypatch, fetched):
    """The fetch stage with a stand-in `bazel` on PATH (the real one is not nested in tests)."""
    commit = "a" * 40
    lock = resolved_lock(commit)
    monkeypatch.setattr(fork_pins.pins, "load_lock", lambda *a: lock)
    bin_dir, output_base = tmp_path / "bin", tmp_path / "ob"
    bin_dir.mkdir()
    (bin_dir / "bazel").write_text(FAKE_BAZEL)
    (bin_dir / "bazel").chmod(0o755)
    for name in ("flashinfer", "lmcache", "vllm"):
        repo = output_base / "external" / f"fork_{name}"
        repo.mkdir(parents=True)
        got = commit if fetched == "same" else "b" * 40
        (repo / "fork_info.json").write_text(
            json.dumps({"commit": got, "archive_sha256": "c" * 64})
        )
    env = dict(
        CPU_ENV,
        PATH=f"{bin_dir}:/usr/bin:/bin",
        BUILD_WORKSPACE_DIRECTORY=str(tmp_path),
        KNLP_FORK_MIRRORS="/srv/git,ssh://prune/srv/git",
        FAKE_BAZEL_LOG=str(tmp_path / "bazel.log"),
        FAKE_OUTPUT_BASE=str(output_base),
    )
    functions = fake_stages(fetch=stages.fetch)
    result = Pipeline("decode", STAGE_SETS["decode"], tmp_path / "f", functions, env).run()
    calls = (tmp_path / "bazel.log").read_text().splitlines()
    assert calls[0].startswith("build --repo_env=KNLP_FORK_MIRRORS=/srv/git,ssh://prune/srv/git")
    assert "@fork_vllm//:src.tar" in calls[0] and "@fork_lmcache//:fork_info.json" in calls[0]
    if fetched == "same":
        assert result["fetch"]["status"] == "ok"
        records = [json.loads(x) for x in (tmp_path / "f/stages/fetch/metrics.jsonl").open()]
        assert {r["fork"] for r in records if r.get("kind") == "fork"} == {
            "flashinfer",
            "lmcache",
            "vllm",
        }
    else:
        assert result["fetch"]["status"] == "failed"
        assert "lock pins another commit" in result["fetch"]["reason"]["detail"]


FAKE_PYTHON = """#!/bin/sh
echo "$@" >> "$FAKE_PYTHON_LOG"
while [ $# -gt 0 ]; do [ "$1" = --out ] && echo '{"metric": "m", "value": 1}' > "$2"; shift; done
"""


def test_the_run_stage_hands_every_program_the_stage_sets_cell(tmp_path, monkeypatch):
    """The run stage with a stand-in serving interpreter that logs its arguments."""
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    monkeypatch.setattr(stages, "gpus", lambda: ["GPU 0: stand-in"])

    def build(ctx):
        ctx.metric(kind="serving_env", python=str(python), nvcc="stand-in")

    env = dict(CPU_ENV, FAKE_PYTHON_LOG=str(tmp_path / "python.log"))
    functions = fake_stages(build=build, run=stages.run)
    spec = STAGE_SETS["decode-sat"]
    result = Pipeline("decode-sat", spec, tmp_path / "c", functions, env).run()
    assert result["run"]["status"] == "ok", result["run"]
    calls = (tmp_path / "python.log").read_text().splitlines()
    assert len(calls) == len(spec["measurements"])
    for call, measurement in zip(calls, spec["measurements"], strict=True):
        program, args = call.split(" ", 1)
        assert program.endswith(f"measure/{measurement}.py")
        assert args.endswith(f"--cell {cell.to_json(spec['cell'])}"), args
    assert (
        "cell: Qwen/Qwen2.5-7B-Instruct bfloat16, K auto / V fp8_e4m3"
        in (tmp_path / "c/stages/run/stdout.log").read_text()
    )


@pytest.mark.parametrize("imports", [True, False])
def test_the_build_stage_checks_that_vllm_and_flashinfer_import_after_the_install(
    tmp_path, monkeypatch, imports
):
    calls = []

    def run(ctx, cmd, cwd=None, env=None, check=True):
        calls.append(([str(c) for c in cmd], env))
        ok = imports or cmd[1:] != ["-c", "import vllm, flashinfer"]
        return subprocess.CompletedProcess(cmd, 0 if ok else 1, "", "ImportError: flashinfer")

    nvcc = {"nvcc": {"available": True, "identity": "nvcc stand-in"}}
    monkeypatch.setattr(stages, "toolchains", lambda: nvcc)
    monkeypatch.setattr(stages, "workspace", lambda ctx: (tmp_path, "bazel"))
    monkeypatch.setattr(stages, "serving_venv", lambda ctx, ws: "/venv/bin/python")
    monkeypatch.setattr(StageContext, "run", run)
    functions = fake_stages(build=stages.build)
    result = Pipeline("decode", STAGE_SETS["decode"], tmp_path / "b", functions, CPU_ENV).run()
    install = "//third_party/forks:install_serving"
    installs = [i for i, (cmd, _) in enumerate(calls) if install in cmd]
    checks = [i for i, (cmd, _) in enumerate(calls) if cmd[1:] == ["-c", "import vllm, flashinfer"]]
    assert len(installs) == 1 and len(checks) == 1 and checks[0] > installs[0], calls
    cmd, env = calls[checks[0]]
    assert cmd[0] == "/venv/bin/python" and env["FLASHINFER_DISABLE_VERSION_CHECK"] == "1"
    if imports:
        assert result["build"]["status"] == "ok"
    else:
        assert result["build"]["status"] == "failed"
        detail = result["build"]["reason"]["detail"]
        assert "FLASHINFER_DISABLE_VERSION_CHECK=1 /venv/bin/python -c 'import vllm" in detail
        assert "ImportError: flashinfer" in detail
