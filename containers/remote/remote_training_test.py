"""Training steps on a remote worker: the same result as a local build, routed by GPU, resumable.

Real Bazel on a copy of this tree, and Bazel's own worker on a second host
(namespace.NamespaceHost). Of the client's files the worker sees only the
venv, at the path the client's toolchain names (standing in for the group's
image, which carries it at /opt/knlp/venvs); at the path where a step keeps
its checkpoints (experiments/store.py) it sees a store of its own. The
checkout, the output root and the client's own store are hidden from it.

  1. local: `bazel run //experiments:gate_ratio`, every action on this machine.
  2. remote: `bazel clean`, then the same command with --config=remote-exec-local:
     every action but Bazel's internal ones executes on the worker, each with the
     CPU pool's platform (pool=cpu, no gpu), and the installed summary.json
     equals the local one but for wall times, run id included.
  3. routing: `--profile=h100 --steps=0` on a stand-in prepared dataset: the
     TrainRun reaches the worker with gpu=h100 and the H100's image in its
     platform, and this worker, with no Docker daemon and no GPU, fails it.
  4. a worker killed while a TrainRun trains: the build fails with one line
     naming the run, its outputs reach neither bazel-bin nor the worker's CAS,
     and its checkpoint stays in the worker's store, so the next build, on a new
     worker over the same store, resumes the run from it.

Bazel in Bazel on the whole tree, minutes long: manual
(`bazel test //containers/remote:remote_training_test`, or as root
`pytest containers/remote/remote_training_test.py -s` after
`bazel build //containers/remote:worker_jar`). It prints the process summaries.
"""

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from containers.cache import nested
from containers.remote import namespace, worker

REPO = Path(os.path.realpath(__file__)).parent.parent.parent
GATE = "//experiments:gate_ratio"
ABLATION = "//experiments:gpt2_ratio_ablation"
FLAGS = ["--color=no", "--curses=no", "--noshow_progress", "--jobs=2"]
# Long enough to pass the cpu profile's first checkpoint (every 200 iterations).
LONG = ["--steps=0", "--iters=300"]
LONG_RUN = "experiments/gpt2_ratio_ablation/cpu-iters300/step00-s1337"
# What summary.json may differ in between two machines: how long a run took.
TIMES = ("wall_s",)


def client_flags(venv: Path) -> list[str]:
    """What every nested command needs: the venv and the downloads this machine has."""
    home = Path(pwd.getpwuid(os.geteuid()).pw_dir)
    return [
        f"--repo_env=KNLP_VENV_ROOT={venv.parent}",
        f"--repository_cache={home / '.cache/bazel/_bazel_root/cache/repos'}",
        *FLAGS,
    ]


def listing(host, path: Path) -> list[str]:
    """What the worker's host sees in `path`."""
    proc = subprocess.run(host.wrap(["ls", "-A", str(path)]), capture_output=True, text=True)
    return proc.stdout.split()


def results_in(cas: Path) -> list[Path]:
    """The blobs of a worker's CAS that are a run's result.json (experiments/record.py)."""
    found = []
    for blob in (p for p in cas.rglob("*") if p.is_file()):
        try:
            data = json.loads(blob.read_bytes())
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and {"status", "inputs_sha256"} <= set(data):
            found.append(blob)
    return found


def installed(checkout: Path) -> dict:
    """The installed summary.json of the gate, after which results/ is removed."""
    (path,) = (checkout / "results" / "gpt2_ratio_ablation").glob("*/summary.json")
    data = json.loads(path.read_text())
    shutil.rmtree(checkout / "results")
    return data


def without_times(summary: dict) -> dict:
    rows = [{k: v for k, v in r.items() if k not in TIMES} for r in summary["runs"]]
    return dict(summary, runs=rows)


def errors(output: str, text: str = "") -> list[str]:
    """Bazel's ERROR lines that contain `text`."""
    return [line for line in output.splitlines() if line.startswith("ERROR:") and text in line]


def properties(spawn: dict) -> dict:
    return {p["name"]: p["value"] for p in spawn.get("platform", {}).get("properties", [])}


def hidden_from_worker(client: Path, venv: Path, store: Path) -> list[Path]:
    """The client's tree, and every directory beside the venv but the venv and the store."""
    beside = [p for p in venv.parent.iterdir() if p.is_dir() and not p.is_symlink()]
    return [client] + [p for p in beside if p not in (venv, store)]


def kill_while_training(checkout, user_root, flags, w, store, log):
    """Builds the long run on `w` and kills the worker once the run has a checkpoint.

    Returns (Bazel's exit code, its output, whether a checkpoint was seen).
    """
    argv = [nested.find_bazel(), "--batch", "--nohome_rc", f"--output_user_root={user_root}"]
    argv += ["build", ABLATION, *LONG, *flags, f"--execution_log_json_file={log}"]
    started = time.time()
    bazel = subprocess.Popen(
        argv,
        cwd=checkout,
        env=nested.bazel_env(Path(user_root) / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = False
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and bazel.poll() is None:
            if any(p.stat().st_mtime >= started for p in store.glob("*/ckpt.pt")):
                seen = True
                break
            time.sleep(0.5)
    finally:
        w.stop()
    out, _ = bazel.communicate(timeout=600)
    return bazel.returncode, out, seen


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = Path(os.environ.get("TEST_TMPDIR") or tmp_path_factory.mktemp("remote_training"))
    work = base / "remote_training"
    nested.remove_output_root(work)
    client = work / "client"
    client.mkdir(parents=True)
    checkout = nested.copy_checkout(REPO, client / "checkout")
    user_root = client / "root"
    worker_root = work / "worker"
    worker_store = worker_root / "store"
    worker_store.mkdir(parents=True)
    # A stand-in for the H100's prepared dataset: the routed run fails before reading it.
    data = client / "data"
    (data / "fineweb-edu").mkdir(parents=True)
    (data / "fineweb-edu" / "train.bin").write_bytes(b"\0" * 64)
    venv = Path(sys.prefix)
    store = worker.action_store_root()
    flags = client_flags(venv)
    out = {}

    def bazel(command, args, name, check=True):
        log = work / f"{name}.json"
        return nested.run_bazel(
            checkout, user_root, command, [*args, *flags], log, check=check, timeout=1800
        )

    try:
        out["local"] = bazel("run", [GATE], "local")
        out["local_summary"] = installed(checkout)
        nested.run_bazel(checkout, user_root, "clean", flags)
        hide = hidden_from_worker(client, venv, store)
        with namespace.NamespaceHost(hide=hide, binds={store: worker_store}) as host:
            out["visible"] = {d: listing(host, d) for d in (venv.parent, checkout)}
            with worker.RemoteWorker(worker_root / "a", host=host, store=store) as w:
                remote = ["--config=remote-exec-local", f"--remote_executor={w.executor}"]
                out["remote"] = bazel("run", [GATE, *remote], "remote")
                out["remote_summary"] = installed(checkout)
                routed = ["--profile=h100", "--steps=0", f"--repo_env=KNLP_DATA_DIR={data}"]
                out["routed"] = bazel(
                    "build", [ABLATION, *routed, *remote, "--keep_going"], "routed", check=False
                )
            killed = worker.RemoteWorker(worker_root / "c", host=host, store=store).start()
            remote = ["--config=remote-exec-local", f"--remote_executor={killed.executor}"]
            remote.append("--remote_retries=1")
            out["killed"] = kill_while_training(
                checkout, user_root, [*remote, *flags], killed, worker_store, work / "killed.json"
            )
            out["killed_outputs"] = sorted(
                p.name for p in (checkout / "bazel-bin" / LONG_RUN).glob("*")
            )
            out["killed_results"] = results_in(worker_root / "c" / "cas")
            out["kept"] = sorted(p.name for p in worker_store.glob("*/ckpt.pt"))
            with worker.RemoteWorker(worker_root / "d", host=host, store=store) as w:
                remote = ["--config=remote-exec-local", f"--remote_executor={w.executor}"]
                out["resumed"] = bazel("build", [ABLATION, *LONG, *remote], "resumed")
            run = checkout / "bazel-bin" / LONG_RUN
            out["resumed_log"] = (run / "log.txt").read_text()
            out["resumed_result"] = json.loads((run / "result.json").read_text())
    finally:
        nested.remove_output_root(user_root)
    yield out


def test_the_worker_sees_the_venv_and_not_the_checkout(scenario):
    venvs, checkout = scenario["visible"].values()
    assert Path(sys.prefix).name in venvs and checkout == [], scenario["visible"]


def test_every_action_of_the_gate_executes_on_the_worker(scenario):
    run = scenario["remote"]
    assert re.fullmatch(r"\d+ internal, \d+ remote", run.processes_line()), run.processes_line()
    assert {s["runner"] for s in run.spawns} == {"remote"}, {s["runner"] for s in run.spawns}
    trains = [s for s in run.spawns if s["mnemonic"] == "TrainRun"]
    assert len(trains) == 2, [s["progressMessage"] for s in run.spawns]


def test_cpu_work_carries_the_cpu_pool_and_no_gpu(scenario):
    for spawn in scenario["remote"].spawns:
        props = properties(spawn)
        assert props.get("pool") == "cpu" and "gpu" not in props, (spawn["progressMessage"], props)


def test_the_remote_gate_reports_the_local_numbers(scenario):
    local, remote = scenario["local_summary"], scenario["remote_summary"]
    assert [r["status"] for r in remote["runs"]] == ["done", "done"], remote["runs"]
    assert without_times(remote) == without_times(local)


def test_a_gpu_step_reaches_the_worker_with_its_gpu(scenario):
    run = scenario["routed"]
    (train,) = [s for s in run.spawns if s["mnemonic"] == "TrainRun"]
    props = properties(train)
    assert props["gpu"] == "h100" and props["pool"] == "gpu", props
    assert props["container-image"].startswith("docker://"), props
    assert train["runner"] == "remote" and run.returncode != 0, run.output
    others = [properties(s) for s in run.spawns if s["mnemonic"] != "TrainRun"]
    assert all(p.get("pool") == "cpu" and "gpu" not in p for p in others), others


def test_a_killed_worker_fails_the_run_with_one_line(scenario):
    code, output, seen = scenario["killed"]
    assert seen, "the run never wrote a checkpoint on the worker:\n" + output[-3000:]
    assert code != 0, output[-3000:]
    causes = errors(output, "step00")
    assert len(causes) == 1 and "UNAVAILABLE" in causes[0], causes
    assert "result.json" not in scenario["killed_outputs"], scenario["killed_outputs"]
    assert scenario["killed_results"] == [], "a result of the killed run reached the CAS"
    assert len(scenario["kept"]) == 1, "the checkpoint did not stay in the worker's store"


def test_the_next_build_resumes_on_the_workers_store(scenario):
    log, values = scenario["resumed_log"], scenario["resumed_result"]["values"]
    assert "resumed from checkpoint at iter 200" in log, log[-3000:]
    assert values["resumed_from"] == 200 and values["iters"] == 300, values
    assert set(s["runner"] for s in scenario["resumed"].spawns) == {"remote"}


def test_report(scenario, capsys):
    """Prints the nested runs' times and Bazel's process summaries into the test log."""
    with capsys.disabled():
        print("\ntraining on a namespace worker:")
        for name in ("local", "remote", "routed", "resumed"):
            r = scenario[name]
            print(f"  {name}: {r.seconds:.1f} s, {r.processes_line()}")
        print("  killed worker: " + " | ".join(errors(scenario["killed"][1])))
        print("  routed: " + " | ".join(errors(scenario["routed"].output)))
    assert scenario["remote"].processes_line()
