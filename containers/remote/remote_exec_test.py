"""Integration test of remote execution: real Bazel, Bazel's own worker on a second host.

The worker (worker.RemoteWorker) runs in a network and mount namespace of the
test's own (namespace.NamespaceHost), reached over a veth pair, with its own
work and CAS directories. The paths only the client has are hidden from it:
the client's checkout, output root and venv roots, and the real user's
~/.cache/knlp. The client is a nested `bazel --batch` on the sample workspace
(containers/remote/sample) with the project's real .bazelrc and its
`--config=remote-exec-local`, pointed at the namespace's address.

- With the venv at a fixed path that the worker has too (its own copy, bound
  there the way the group's image carries it), the genrule, the sh_test and the
  py_test all execute remotely.
- With the default venv root, which only the client has, the py_test fails on
  the worker: the isolation is real.
- With the `runfiles` layout the venv travels as inputs and the py_test passes.
- An action may write the checkpoint store of its worker's machine, which is
  the worker's own (bound at the path a step looks for it), not the client's.
- A GPU target's genrule (`exec_compatible_with`) and an action in a GPU exec
  group (pools.bzl, as a GPU profile's training step) carry `gpu=h100` in their
  platform, the CPU ones none.
- A worker killed mid-action fails the build with a one-line cause, or, with
  --remote_local_fallback, the action runs locally; the half-written output
  reaches neither the worker's CAS nor the client's output tree.

Run by `bazel test //containers/remote:remote_exec_test` or
`pytest containers/remote/remote_exec_test.py` (root, after
`bazel build //containers/remote:worker_jar`).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from containers.cache import nested
from containers.remote import namespace, worker
from tools.bazel import venv

HERE = Path(__file__).parent
REPO = HERE.parent.parent
SAMPLE = HERE / "sample"
# sample file -> where it goes in a checkout
SAMPLE_FILES = {
    "WORKSPACE.sample": "WORKSPACE",
    "BUILD.sample": "BUILD.bazel",
    "check.sh": "check.sh",
    "routed.bzl.sample": "routed.bzl",
    "venv_test.py": "venv_test.py",
    "platforms.BUILD.sample": "containers/platforms/BUILD.bazel",
    "tools.BUILD.sample": "tools/bazel/BUILD.bazel",
    "python.BUILD.sample": "third_party/python/BUILD.bazel",
    "requirements_cpu.lock": "third_party/python/requirements_cpu.lock",
}
# knlp files a checkout loads, at the same paths as in knlp
REPO_FILES = [
    ".bazelrc",
    "containers/defs.bzl",
    "containers/images.bzl",
    "containers/images_lock.bzl",
    "containers/platforms/pools.bzl",
    "tools/bazel/bazel_rules.bzl",
    "tools/bazel/gpu_targets.bzl",
    "tools/bazel/python.bzl",
    "tools/bazel/venv.py",
]
SAMPLE_TESTS = {"//:greeting_test", "//:venv_test"}
FLAGS = ["--color=no", "--curses=no", "--noshow_progress", "--test_output=errors"]
FLAGS += ["--test_summary=short"]
PARTIAL = b"partial\n"


def make_checkout(dest):
    for src, rel in SAMPLE_FILES.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / src, dest / rel)
    for rel in REPO_FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, dest / rel)
    (dest / "containers" / "BUILD.bazel").write_text("")
    return dest


def prime_image_venv(lock, root):
    """The worker's own venv at `root`, as containers/prime_venv.sh makes an image's."""
    subprocess.run(
        ["/usr/bin/python3.11", str(REPO / "tools/bazel/venv.py")]
        + ["--interpreter", "/usr/bin/python3.11", "--lock", str(lock), "--root", str(root)],
        check=True,
        capture_output=True,
    )


def real_venv_root():
    """The venv root of the user running the test (tools/bazel/venv.py's default)."""
    return venv.default_root()


def spawn_runners(run):
    """{progress message: runner} for each spawn of a nested run."""
    return {s.get("progressMessage", ""): s.get("runner", "") for s in run.spawns}


def platform(run, label):
    """{name: value} of the platform of the spawn that built `label`."""
    for s in run.spawns:
        if s.get("progressMessage", "").endswith(label):
            return {p["name"]: p["value"] for p in s.get("platform", {}).get("properties", [])}
    messages = [s.get("progressMessage") for s in run.spawns]
    raise AssertionError(f"no spawn for {label} in {messages}")


def cause_lines(output):
    return [line for line in output.splitlines() if line.startswith("ERROR:")]


def kill_mid_action(checkout, user_root, host, worker_root, args):
    """Builds //:slow, kills the worker once its action has written half its output.

    Returns (Bazel's exit code, its output, whether the half output was seen).
    """
    w = worker.RemoteWorker(worker_root, host=host)
    w.start()
    argv = [nested.find_bazel(), "--batch", "--nohome_rc", f"--output_user_root={user_root}"]
    argv += ["build", "//:slow"] + FLAGS + args + [f"--remote_executor={w.executor}"]
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
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and bazel.poll() is None:
            if any(p.read_bytes() == PARTIAL for p in w.work_dir.glob("build-*/**/slow.txt")):
                seen = True
                break
            time.sleep(0.2)
    finally:
        w.stop()
    out, _ = bazel.communicate(timeout=600)
    return bazel.returncode, out, seen


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = Path(os.environ.get("TEST_TMPDIR") or tmp_path_factory.mktemp("remote"))
    work = base / "remote_scenario"
    nested.remove_output_root(work)
    client = work / "client"
    worker_root = work / "worker"
    user_root = client / "bazel_user_root"
    # The fixed venv path of the image approach: the client builds its venv
    # there, the worker sees its own copy at the same path.
    fixed_root = client / "opt-knlp-venvs"
    image = worker_root / "image"
    # The worker's checkpoint store, where its actions look for one.
    worker_store = worker_root / "store"
    for d in (user_root, fixed_root, image, worker_store):
        d.mkdir(parents=True)
    checkout = make_checkout(client / "checkout")
    prime_image_venv(checkout / "third_party/python/requirements_cpu.lock", image)
    hidden = [client]
    if real_venv_root().is_dir():
        hidden.append(real_venv_root())
    results = {}
    remote = ["--config=remote-exec-local"]

    def run(command, args, log, check=True):
        return nested.run_bazel(checkout, user_root, command, args + FLAGS, work / log, check=check)

    try:
        binds = {fixed_root: image, worker.action_store_root(): worker_store}
        with namespace.NamespaceHost(hide=hidden, binds=binds) as host:
            with worker.RemoteWorker(worker_root / "a", host=host) as w:
                remote.append(f"--remote_executor={w.executor}")
                results["visible"] = {
                    d: subprocess.run(
                        host.wrap(["ls", "-A", str(d)]), capture_output=True, text=True
                    ).stdout.split()
                    for d in (checkout, fixed_root, real_venv_root())
                }
                fixed = [f"--repo_env=KNLP_VENV_ROOT={fixed_root}"]
                results["image"] = run("test", ["//..."] + remote + fixed, "a.json")
                results["store_probe"] = sorted(p.name for p in worker_store.iterdir())
                results["client_probe"] = (worker.action_store_root() / "sample-probe").exists()
                results["external"] = run("test", ["//:venv_test"] + remote, "b.json", check=False)
                results["runfiles"] = run(
                    "test",
                    ["//:venv_test", "--repo_env=KNLP_VENV_LAYOUT=runfiles"] + remote,
                    "c.json",
                    check=False,
                )
            results["routing"] = run(
                "build",
                ["//:routed_h100", "//:routed_cpu", "//:grouped_h100", "//:grouped_cpu"]
                + ["--config=remote-exec", "--remote_executor="]
                + fixed,  # not the config's /opt/knlp/venvs: a test writes only its own tree
                "d.json",
            )
            slow = ["--config=remote-exec-local", "--remote_retries=1"]
            slow_worker = worker_root / "b"
            results["killed"] = kill_mid_action(checkout, user_root, host, slow_worker, slow)
            results["killed_output"] = (checkout / "bazel-bin" / "slow.txt").exists()
            results["fallback"] = kill_mid_action(
                checkout,
                user_root,
                host,
                slow_worker,
                slow + ["--remote_local_fallback"],
            )
            results["fallback_output"] = (checkout / "bazel-bin" / "slow.txt").read_bytes()
            cas = [p for p in (slow_worker / "cas").rglob("*") if p.is_file()]
            results["cas_files"] = [p.read_bytes() for p in cas]
            results["cas_digests"] = {p.name for p in cas}
    finally:
        nested.remove_output_root(user_root)
    summary = {
        k: {"seconds": round(r.seconds, 1), "processes": r.processes_line(), "tests": r.tests()}
        for k, r in results.items()
        if isinstance(r, nested.Run)
    }
    results["summary"] = summary
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outputs:
        Path(outputs, "remote_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return results


def test_client_paths_are_hidden_and_the_image_path_is_the_workers(scenario):
    # The worker sees its own venv at the fixed path, an empty checkout and venv root
    # (but for its own checkpoint store, when the store lies in that root).
    checkout, fixed_root, venv_root = scenario["visible"].values()
    store = worker.action_store_root()
    own = [store.name] if store.parent == real_venv_root() else []
    assert checkout == [] and venv_root == own, scenario["visible"]
    venvs = [name for name in fixed_root if name.startswith("venv-")]
    assert len(venvs) == 1 and re.match(r"venv-[0-9a-f]{16}-py3\.11", venvs[0]), fixed_root


def test_every_action_runs_remotely(scenario):
    run = scenario["image"]
    assert run.tests() == {t: "PASSED" for t in SAMPLE_TESTS}, run.output
    m = re.match(r"(\d+) internal, (\d+) remote$", run.processes_line())
    assert m and int(m.group(2)) >= 5, run.processes_line()
    runners = spawn_runners(run)
    assert runners and set(runners.values()) == {"remote"}, runners


def test_a_client_only_venv_fails_on_the_worker(scenario):
    run = scenario["external"]
    assert run.returncode != 0, run.output
    assert run.tests() == {"//:venv_test": "FAILED"}, run.output
    assert "remote" in run.processes_line(), run.output


def test_runfiles_venv_travels_with_the_action(scenario):
    run = scenario["runfiles"]
    assert run.returncode == 0, run.output
    assert run.tests() == {"//:venv_test": "PASSED"}, run.output
    assert set(spawn_runners(run).values()) == {"remote"}, spawn_runners(run)


def test_an_action_writes_the_store_of_its_worker(scenario):
    assert scenario["image"].tests(), scenario["image"].output
    assert scenario["store_probe"] == ["sample-probe"]
    assert not scenario["client_probe"], "the action wrote the client's store"


@pytest.mark.parametrize("kind", ["routed", "grouped"])
def test_gpu_action_carries_its_target_and_cpu_action_none(scenario, kind):
    run = scenario["routing"]
    gpu = platform(run, f"//:{kind}_h100")
    cpu = platform(run, f"//:{kind}_cpu")
    assert gpu["gpu"] == "h100" and gpu["pool"] == "gpu", gpu
    assert gpu["container-image"].startswith("docker://"), gpu
    assert cpu["pool"] == "cpu" and "gpu" not in cpu, cpu


def test_killed_worker_fails_the_build_with_one_cause(scenario):
    code, out, seen = scenario["killed"]
    assert seen, "the slow action never started on the worker:\n" + out
    assert code != 0, out
    causes = [line for line in cause_lines(out) if "//:slow" in line]
    assert len(causes) == 1 and "UNAVAILABLE" in causes[0], cause_lines(out)
    assert not scenario["killed_output"], "the failed action left an output in bazel-bin"


def test_killed_worker_falls_back_locally(scenario):
    code, out, seen = scenario["fallback"]
    assert seen, out
    assert code == 0, out
    assert re.search(r"\b1 local\b", out), out
    assert scenario["fallback_output"] == PARTIAL + b"complete\n"


def test_nothing_half_written_reaches_the_cache(scenario):
    partial = hashlib.sha256(PARTIAL).hexdigest()
    assert partial not in scenario["cas_digests"]
    assert PARTIAL not in scenario["cas_files"]


def test_report(scenario, capsys):
    """Prints the nested runs' times and Bazel's process summaries into the test log."""
    with capsys.disabled():
        print("\nremote execution on a namespace worker:")
        for name, s in scenario["summary"].items():
            print(f"  {name}: {s['seconds']} s, {s['processes']}, {s['tests']}")
        print("  killed worker: " + " | ".join(cause_lines(scenario["killed"][1])))
    assert scenario["summary"]["image"]["processes"]
