"""Damaged and unwritable records: one-line errors naming the file, nothing lost.

A record that does not have its declared shape (experiments/record.py) fails
with the file and the key; the report draws nothing from it; a write that
fails for space or permission is one line and keeps the old file; a run whose
disk fills up fails its action without recording a result; the installer
never mixes one experiment's runs into a directory holding others.
"""

import errno
import json
import os
import re

import pytest
import torch

from experiments import install, report, results, run_step, testing
from experiments.bigram import BigramLM
from experiments.record import RecordError, RunResult, Summary
from experiments.results import ResultsError, atomic_write_json, read_json
from experiments.trainer import TrainConfig, Trainer


def _error_line(capsys):
    """The last stderr line, with no traceback before it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def _experiment(tmp_path, losses=(2.0, 2.1), name="runs"):
    runs = [
        testing.run_result(f"step0{i}-s1337", values={"val_loss": v}, inputs_sha256=f"{v:064}")
        for i, v in enumerate(losses)
    ]
    metrics = {r.run: testing.metrics_of([3.0, 2.5, 2.2], [r.values["val_loss"]]) for r in runs}
    return testing.write_experiment(tmp_path / name, runs, metrics), runs


def _files(path):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)


DAMAGE = {
    "a key missing": (lambda r: r.pop("status"), "missing key(s) status of a RunResult"),
    "a wrong type": (lambda r: r.update(values="fast"), "values is 'fast', not a dict"),
    "an unknown status": (lambda r: r.update(status="ok"), "status 'ok'; accepted: done, failed"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_result_names_file_and_key_and_nothing_is_drawn(tmp_path, capsys, damage):
    path, _ = _experiment(tmp_path)
    result = tmp_path / "runs" / "step01-s1337" / "result.json"
    edit, message = DAMAGE[damage]
    record = read_json(str(result))
    edit(record)
    result.write_text(json.dumps(record))
    with pytest.raises(RecordError, match=f"^{re.escape(f'{result}: {message}')}$"):
        report.load(path)
    out = tmp_path / "report"
    assert report.main(["--experiment", path, "--out", str(out)]) == 2
    assert _error_line(capsys) == f"report: {result}: {message}"
    assert _files(out) == []  # no summary and no plot from a damaged record


def test_a_corrupt_metrics_line_draws_nothing(tmp_path, capsys):
    path, _ = _experiment(tmp_path)
    metrics = tmp_path / "runs" / "step00-s1337" / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text(lines[0] + '{"iter": 2, "kind": "tr\n' + "".join(lines[2:]))
    out = tmp_path / "report"
    assert (
        results.exit_on_results_error(
            lambda: report.main(["--experiment", path, "--out", str(out)])
        )
        == 2
    )
    assert _error_line(capsys) == f"error: {metrics}:2: corrupt JSONL line (not the last one)"
    assert _files(out) == []


def test_records_name_the_key_they_lack():
    good = testing.run_result("a-s1").to_dict()
    with pytest.raises(RecordError, match="^x.json: a RunResult is a JSON object, got list$"):
        RunResult.from_dict([good], "x.json")
    with pytest.raises(RecordError, match=r"^x.json: seed is '1', not a int \| None$"):
        RunResult.from_dict(dict(good, seed="1"), "x.json")
    summary = {
        "experiment": "e",
        "run_id": "cpu-0",
        "complete": True,
        "metric": "val_loss",
        "metric_label": "val loss",
        "lower_is_better": True,
        "reference": None,
        "unigram_entropy": None,
        "steps": [{"step": "a", "label": "a", "runs": 1, "mean": 2.0, "std": None}],
        "runs": [],
        "checks": [],
    }
    with pytest.raises(RecordError, match=r"^s.json: steps\[0\]: missing key\(s\) runs_done, "):
        Summary.from_dict(summary, "s.json")
    summary["steps"] = []
    summary["runs"] = [{"run": "a", "step": "a", "seed": 1, "status": "done", "label": "a"}]
    with pytest.raises(RecordError, match=r"^s.json: runs\[0\] lacks failure$"):
        Summary.from_dict(summary, "s.json")


def _install(path, report_dir, results_dir, *extra):
    argv = ["--experiment", path, "--report", str(report_dir), "--results-dir", str(results_dir)]
    return install.main(argv + list(extra))


def _report(path, out):
    report.write(report.load(path), str(out))
    return out


def test_the_installer_never_mixes_runs_into_a_directory_of_others(tmp_path, capsys):
    first, _ = _experiment(tmp_path, name="first")
    second, _ = _experiment(tmp_path, losses=(2.0, 2.3), name="second")  # step01 differs
    dest_root = tmp_path / "results"
    assert _install(first, _report(first, tmp_path / "r1"), dest_root) == 0
    (dest,) = (dest_root / "tiny").iterdir()
    before = {f: open(f, "rb").read() for f in _files(dest)}
    capsys.readouterr()
    rc = _install(second, _report(second, tmp_path / "r2"), dest_root, "--run-id", dest.name)
    assert rc == 2
    assert _error_line(capsys) == (
        f"knlp: {dest} holds other runs (its manifest.json lists other inputs digests); "
        "install under another --run-id, or remove it"
    )
    assert {f: open(f, "rb").read() for f in _files(dest)} == before  # nothing touched
    assert _install(second, tmp_path / "r2", dest_root) == 0  # its own run id: installed
    assert len(list((dest_root / "tiny").iterdir())) == 2


def test_the_installer_names_a_corrupt_manifest_and_places_nothing(tmp_path, capsys):
    path, _ = _experiment(tmp_path)
    out = _report(path, tmp_path / "report")
    dest = tmp_path / "results" / "tiny" / read_json(str(out / "summary.json"))["run_id"]
    dest.mkdir(parents=True)
    (dest / "manifest.json").write_text('{"runs": {"step00-s1337": ')
    rc = results.exit_on_results_error(lambda: _install(path, out, tmp_path / "results"))
    assert rc == 2
    manifest = dest / "manifest.json"
    assert _error_line(capsys).startswith(f"error: {manifest}: corrupt JSON at line 1")
    assert _files(dest) == [str(manifest)]


def test_the_installer_names_a_damaged_summary(tmp_path, capsys):
    path, _ = _experiment(tmp_path)
    out = _report(path, tmp_path / "report")
    summary = out / "summary.json"
    record = read_json(str(summary))
    del record["complete"]
    summary.write_text(json.dumps(record))
    assert _install(path, out, tmp_path / "results") == 2
    assert _error_line(capsys) == f"knlp: {summary}: missing key(s) complete of a Summary"
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_failed_write_is_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys, code):
    """A full disk or a denied write, simulated by failing fsync (no tmpfs needed)."""
    path = tmp_path / "x.json"
    atomic_write_json(str(path), {"kept": 1})
    before = path.read_bytes()

    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(results.os, "fsync", fail)
    with pytest.raises(ResultsError, match=f"cannot write {path}: {os.strerror(code)}"):
        atomic_write_json(str(path), {"kept": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.json"]  # no temporary file left
    w = results.JsonlWriter(str(tmp_path / "m.jsonl"))
    w.write({"iter": 1})  # flushed; the disk refuses it when it is synced
    for finish in (w.sync, w.close):
        with pytest.raises(ResultsError, match=f"cannot write {tmp_path / 'm.jsonl'}"):
            finish()

    def main():
        atomic_write_json(str(path), {"kept": 3})
        return 0

    assert results.exit_on_results_error(main) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot write {path}") and "\n" not in err


def test_a_full_disk_fails_the_run_and_records_no_result(tmp_path, monkeypatch, capsys):
    """The disk, not the step, failed: the action fails with one line, no result.json is
    written (a failed result would be cached as the run's finding), the store is kept."""
    spec = tmp_path / "spec.json"
    testing.write_run_spec(spec, "pruning_matrix", "lenet5-adamw-magnitude-50", iters=8)
    inputs = testing.write_inputs(tmp_path / "inputs.txt", [spec])
    out, store = tmp_path / "out", tmp_path / "store"
    out.mkdir()
    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up once the run writes its metrics
        if os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.jsonl"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(results.os, "fsync", fsync)
    argv = ["--spec", str(spec), "--inputs", inputs, "--out", str(out), "--store", str(store)]
    threads = torch.get_num_threads()
    try:
        assert run_step.main(argv) == 1
    finally:
        torch.set_num_threads(threads)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("run_step: lenet5-adamw-magnitude-50-s1337: ResultsError: cannot ")
    assert "metrics.jsonl: No space left on device" in last and last.endswith(
        "build again to resume"
    )
    assert not (out / "result.json").exists()
    (kept,) = store.iterdir()
    assert (kept / "log.txt").exists()


def test_killed_step_without_checkpoint_says_it_restarts(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"iter": 0, "kind": "train", "loss": 4.0}\n')
    said = []
    model = BigramLM(vocab=64, dim=8)
    trainer = Trainer(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters()),
        get_batch=None,
        cfg=TrainConfig(max_iters=1, progress=False),
        metrics_path=str(metrics),
        checkpoint_path=str(tmp_path / "ckpt.pt"),
        step_name="s",
        log=said.append,
    )
    assert trainer.maybe_resume() is False
    assert said == ["[s] no checkpoint yet, restarting step"]
    assert not metrics.exists()
