"""Runs are build outputs, shown on the real tree with real Bazel: the key is exact, results
are shared through the cache, and a killed build resumes.

Two checkouts of this tree (A, and B in another directory with its own
output root) build `//experiments:gpt2_ratio_ablation --steps=0,8 --iters=6`
against one cache server (containers/cache/serve.py) on 127.0.0.1:

  1. A, cold: both runs train (2 TrainRun spawns executed).
  2. A, models/gpt2/gpt2_mla.py changed: step 8 alone retrains.
  3. A, models/gpt2/layers.py's attention scale 1/sqrt(D) -> 5/sqrt(D): both retrain,
     and the installed summary.json reports the new numbers, not the old ones (the
     stale-result case of the old tree's run ids).
  4. A, experiments/summary.py changed: nothing retrains; the Report reruns.
  5. B, the first command again: no TrainRun executes (every one a remote-cache hit),
     and its summary.json numbers equal A's from step 1.
  6. A, a longer run, and the Bazel server SIGKILLed mid-run: the same command
     resumes from the checkpoint (its log says from which iteration), and its final
     metrics equal those of the same action run uninterrupted (run_step directly).

It runs Bazel in Bazel on the whole tree and takes minutes, so it is tagged
manual (`bazel test //tools:run_actions_test`; `pytest tools/run_actions_test.py -s`
from the root), and prints the counts.
"""

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from containers.cache import nested, serve

REPO = Path(os.path.realpath(__file__)).parent.parent
TARGET = "//experiments:gpt2_ratio_ablation"
ARGS = ["--steps=0,8", "--iters=6", "--color=no", "--curses=no", "--noshow_progress"]
LONG = ["--steps=0", "--iters=400", "--color=no", "--curses=no", "--noshow_progress"]
EDITS = {
    "mla": ("models/gpt2/gpt2_mla.py", "USES_WPE = False", "USES_WPE = True"),
    "layers": (
        "models/gpt2/layers.py",
        "scale = q.size(-2), k.size(-2), 1.0 / math.sqrt(q.size(-1))",
        "scale = q.size(-2), k.size(-2), 5.0 / math.sqrt(q.size(-1))",
    ),
    "summary": (
        "experiments/summary.py",
        "Each step is compared with its reference",
        "Every step is compared with its reference",
    ),
}


def copy_tree(dest: Path) -> Path:
    """This checkout's files (tracked and untracked, not ignored) at `dest`, as a git repo."""
    return nested.copy_checkout(REPO, dest)


def edit(checkout: Path, name: str, undo: bool = False) -> None:
    path, old, new = EDITS[name]
    p = checkout / path
    text = p.read_text()
    a, b = (new, old) if undo else (old, new)
    assert a in text, f"{path} no longer holds {a!r}; update EDITS"
    p.write_text(text.replace(a, b))


def home() -> Path:
    return Path(pwd.getpwuid(os.geteuid()).pw_dir)


CREDENTIALS = ("writer", secrets.token_urlsafe(16))


def bazel_flags(cache_url: str) -> list[str]:
    """What every nested command needs: the venv and the downloads this machine already
    has, and the cache, with the writer's credentials."""
    return [
        f"--repo_env=KNLP_VENV_ROOT={Path(sys.prefix).parent}",
        f"--repository_cache={home() / '.cache/bazel/_bazel_root/cache/repos'}",
        f"--remote_cache={cache_url}",
        "--remote_upload_local_results=true",
        "--remote_header=Authorization=" + serve.basic_auth_header(*CREDENTIALS),
    ]


def trained(run: nested.Run) -> list[dict]:
    """The TrainRun spawns the build executed (not taken from a cache)."""
    return [s for s in run.spawns if s.get("mnemonic") == "TrainRun" and not s["remoteCacheHit"]]


def installed(checkout: Path) -> dict:
    (summary,) = (checkout / "results" / "gpt2_ratio_ablation").glob("*/summary.json")
    data = json.loads(summary.read_text())
    shutil.rmtree(checkout / "results")
    return {r["run"]: r["final_val_loss"] for r in data["runs"]}


class Checkout:
    """One checkout and its own output root; every command a `bazel --batch` of its own."""

    def __init__(self, path: Path, user_root: Path, cache_url: str, work: Path):
        self.path, self.user_root, self.work, self.n = path, user_root, work, 0
        self.flags = bazel_flags(cache_url)

    def bazel(self, command, args) -> nested.Run:
        self.n += 1
        log = self.work / f"{self.path.name}-{self.n}.json"
        return nested.run_bazel(
            self.path, self.user_root, command, [*args, *self.flags], log, timeout=1800
        )

    def popen(self, command, args) -> subprocess.Popen:
        argv = [
            nested.find_bazel(),
            "--batch",
            "--nohome_rc",
            f"--output_user_root={self.user_root}",
            command,
            *args,
            *self.flags,
        ]
        return subprocess.Popen(
            argv,
            cwd=self.path,
            env=nested.bazel_env(self.user_root / "home"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = Path(os.environ.get("TEST_TMPDIR") or tmp_path_factory.mktemp("actions"))
    work = base / "actions_scenario"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    server = serve.CacheServer(work / "cache", users={CREDENTIALS[0]: CREDENTIALS[1]})
    server.start()
    out = {}
    try:
        a = Checkout(copy_tree(work / "a"), work / "root_a", server.url, work)
        b = Checkout(copy_tree(work / "elsewhere" / "b"), work / "root_b", server.url, work)
        out["cold"] = a.bazel("run", [TARGET, *ARGS])
        out["cold_values"] = installed(a.path)
        edit(a.path, "mla")
        out["mla"] = a.bazel("build", [TARGET, *ARGS])
        edit(a.path, "mla", undo=True)
        edit(a.path, "layers")
        out["layers"] = a.bazel("run", [TARGET, *ARGS])
        out["layers_values"] = installed(a.path)
        edit(a.path, "layers", undo=True)
        edit(a.path, "summary")
        out["summary"] = a.bazel("build", [TARGET, *ARGS])
        edit(a.path, "summary", undo=True)
        out["shared"] = b.bazel("run", [TARGET, *ARGS])
        out["shared_values"] = installed(b.path)
        out.update(kill_and_resume(a))
        yield out
    finally:
        server.stop()


def kill_and_resume(a: Checkout) -> dict:
    """Starts the long run, SIGKILLs Bazel (in --batch, client and server are one process)
    once a checkpoint exists, and runs the same command again."""
    started = time.time()
    client = a.popen("build", [TARGET, *LONG])
    deadline = started + 900
    while time.time() < deadline and client.poll() is None:
        if own_checkpoint(home() / ".cache/knlp/runs", "step00-s1337", started):
            break
        time.sleep(0.5)
    assert client.poll() is None, "the long run ended before it wrote a checkpoint"
    client.send_signal(signal.SIGKILL)
    client.wait()
    time.sleep(5)  # the orphaned run notices, saves its checkpoint and stops
    resumed = a.bazel("build", [TARGET, *LONG])
    run = a.path / "bazel-bin" / "experiments" / "gpt2_ratio_ablation" / "cpu-iters400"
    run = run / "step00-s1337"
    return {
        "resumed": resumed,
        "resumed_log": (run / "log.txt").read_text(),
        "resumed_result": json.loads((run / "result.json").read_text()),
        "fresh_result": uninterrupted(a, run),
    }


def own_checkpoint(runs: Path, run: str, since: float) -> bool:
    """Whether `run` has written a checkpoint since `since`. The store is the user's, so
    other runs' checkpoints (another experiment building beside this test) do not count."""
    for ckpt in runs.glob("*/ckpt.pt"):
        log = ckpt.parent / "log.txt"
        try:
            if ckpt.stat().st_mtime > since and f"{run}:" in log.read_text(errors="replace"):
                return True
        except FileNotFoundError:  # the run finished and its directory went meanwhile
            continue
    return False


def uninterrupted(a: Checkout, run: Path) -> dict:
    """The result of the same action run once without interruption: its own program,
    spec and inputs, a store of its own."""
    tmp = Path(os.environ.get("TEST_TMPDIR", "/tmp")) / "uninterrupted"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "out").mkdir(parents=True)
    lines = (run / "inputs.txt").read_text().splitlines()
    (program,) = [
        p for short, p in (x.split("\t") for x in lines) if short.endswith("/run_gpt2_gpt2")
    ]
    execroot = a.path / f"bazel-{a.path.name}"
    subprocess.run(
        [
            program,
            *("--spec", str(run / "spec.json"), "--inputs", str(run / "inputs.txt")),
            *("--data-root", "bazel-out/k8-fastbuild/bin/data"),
            *("--out", str(tmp / "out"), "--store", str(tmp / "store")),
        ],
        cwd=execroot,
        check=True,
        capture_output=True,
    )
    return json.loads((tmp / "out" / "result.json").read_text())


def test_a_cold_build_trains_every_run(scenario):
    assert len(trained(scenario["cold"])) == 2


def test_a_change_to_one_model_file_retrains_only_its_steps(scenario):
    assert [s["progressMessage"] for s in trained(scenario["mla"])] == [
        "Training gpt2_ratio_ablation step08-s1337 (cpu)"
    ]


def test_a_change_to_the_shared_attention_retrains_and_reports_new_numbers(scenario):
    assert len(trained(scenario["layers"])) == 2
    old, new = scenario["cold_values"], scenario["layers_values"]
    assert set(old) == set(new) == {"step00-s1337", "step08-s1337"}
    for run in old:
        assert old[run] != new[run], f"{run} reports the old number {old[run]}"


def test_a_change_to_the_report_retrains_nothing(scenario):
    mnemonics = [s["mnemonic"] for s in scenario["summary"].spawns if not s["remoteCacheHit"]]
    assert "TrainRun" not in mnemonics and "Report" in mnemonics


def test_a_second_checkout_takes_every_run_from_the_cache(scenario):
    shared = scenario["shared"]
    runs = [s for s in shared.spawns if s.get("mnemonic") == "TrainRun"]
    assert len(runs) == 2 and trained(shared) == [], shared.processes_line()
    assert scenario["shared_values"] == scenario["cold_values"]


def test_a_killed_build_resumes_from_its_checkpoint(scenario):
    log = scenario["resumed_log"]
    assert "stopping at the next iteration" in log or "resumed from checkpoint" in log
    assert "resumed from checkpoint at iter" in log, log
    resumed, fresh = scenario["resumed_result"]["values"], scenario["fresh_result"]["values"]
    assert resumed["resumed_from"] and not fresh["resumed_from"]
    for key in ("val_loss", "best_val_loss", "final_train_loss", "first_loss", "iters"):
        assert f"{resumed[key]:.6g}" == f"{fresh[key]:.6g}", key
    print(
        f"\ncold: {scenario['cold'].processes_line()}\nmla: {scenario['mla'].processes_line()}\n"
        f"layers: {scenario['layers'].processes_line()}\n"
        f"summary: {scenario['summary'].processes_line()}\n"
        f"second checkout: {scenario['shared'].processes_line()}\n"
        f"resumed from iter {resumed['resumed_from']}"
    )
