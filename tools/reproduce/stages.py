"""The six stages of the decode reproduction: doctor, fetch, build, run, report, upload.

Each is a function of a StageContext (pipeline.py). Stages that need what this
machine lacks (a resolved fork lock, nvcc, a GPU, an upload target) raise Skip
with a stable code, so the report can say why a gate has no data.

The fetch and build stages call Bazel in the user's workspace
(BUILD_WORKSPACE_DIRECTORY, set by `bazel run`): the forks are fetched and
built by the same targets a person would build by hand.
"""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from experiments.results import atomic_write_json, atomic_write_text
from tools.reproduce import cell
from tools.reproduce import report as report_lib
from tools.reproduce.fork_pins import fork_pins, load_lock, pair_forks
from tools.reproduce.pipeline import PipelineError, Skip, external_runfile

MEASURE_DIR = Path(__file__).resolve().parent / "measure"
UPDATE_CMD = "bazel run //third_party/forks:update"


# Probes: what this machine has. The doctor records all of them.


def gpus():
    try:
        proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if proc.returncode != 0:
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.startswith("GPU")]


def toolchains():
    path = external_runfile("local_toolchains", "toolchains.json")
    return json.loads(path.read_text()) if path else {}


def torch_info(python=sys.executable):
    code = (
        "import json, torch; print(json.dumps({'version': torch.__version__, "
        "'cuda': torch.version.cuda, 'cuda_available': torch.cuda.is_available()}))"
    )
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"error": str(err)}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["import torch failed"])[-1]}
    return json.loads(proc.stdout)


def workspace(ctx):
    ws = ctx.env.get("BUILD_WORKSPACE_DIRECTORY")
    if not ws:
        raise Skip(
            "no_workspace",
            "this stage calls Bazel in the workspace; start the pipeline with "
            "`bazel run //tools/reproduce:<stage_set>`",
        )
    bazel = shutil.which("bazel", path=ctx.env.get("PATH"))
    if not bazel:
        raise Skip("no_bazel", "bazel is not on PATH; run ./setup.sh")
    return Path(ws), bazel


def mirror_flags(ctx):
    mirrors = ctx.env.get("KNLP_FORK_MIRRORS", "")
    return [f"--repo_env=KNLP_FORK_MIRRORS={mirrors}"] if mirrors else []


# Stages.


def doctor(ctx):
    found = gpus()
    ctx.metric(check="gpu", ok=bool(found), value=found)
    tools = toolchains()
    nvcc = tools.get("nvcc", {"available": False})
    ctx.metric(check="nvcc", ok=nvcc["available"], value=nvcc.get("identity", "missing"))
    torch = torch_info()
    ctx.metric(check="torch", ok="error" not in torch, value=torch)
    venv = external_runfile("pip", "venv_info.json")
    ctx.metric(
        check="venv", ok=venv is not None, value=json.loads(venv.read_text()) if venv else None
    )
    forks = fork_pins(ctx.stage_set_spec)
    ctx.metric(check="fork_pins", ok=all(f["resolved"] for f in forks.values()), value=forks)
    ctx.metric(check="fork_mirrors", ok=True, value=ctx.env.get("KNLP_FORK_MIRRORS", ""))
    ctx.metric(check="bazel_workspace", ok=bool(ctx.env.get("BUILD_WORKSPACE_DIRECTORY")))
    free = shutil.disk_usage(ctx.run_dir).free
    ctx.metric(check="disk_free_gib", ok=free > 50 << 30, value=round(free / (1 << 30), 1))
    for record in ctx.records:
        ctx.log(
            f"{record['check']:<16} {'ok' if record['ok'] else '--'}  {record.get('value', '')}"
        )


def fetch(ctx):
    unresolved = {n: f for n, f in fork_pins(ctx.stage_set_spec).items() if not f["resolved"]}
    if unresolved:
        names = ", ".join(
            f"{n} ({f['ref'] or 'bare commit'}, known prefix {f['commit_prefix'] or 'none'})"
            for n, f in unresolved.items()
        )
        raise Skip(
            "forks_unresolved",
            f"the lock has no full commit SHA for {names}; run `{UPDATE_CMD}` on a host with "
            "network access (or prune's mirrors) and commit forks.lock.json",
            forks=sorted(unresolved),
        )
    ws, bazel = workspace(ctx)
    names = pair_forks(ctx.stage_set_spec)
    targets = [f"@fork_{n}//:{f}" for n in names for f in ("src.tar", "fork_info.json")]
    ctx.run([bazel, "build", *mirror_flags(ctx), *targets], cwd=ws)
    output_base = ctx.run([bazel, "info", "output_base"], cwd=ws).stdout.strip()
    lock = load_lock()
    for name in names:
        info = json.loads(
            (Path(output_base) / "external" / f"fork_{name}/fork_info.json").read_text()
        )
        if info["commit"] != lock["forks"][name]["commit"]:
            raise PipelineError(f"fork {name}: fetched {info['commit']}, lock pins another commit")
        ctx.metric(kind="fork", fork=name, commit=info["commit"], archive=info["archive_sha256"])


def serving_venv(ctx, ws):
    """The environment the forks are installed into: KNLP_SERVING_VENV, or one per CUDA lock."""
    lock = ws / "third_party/python/requirements_cuda.lock"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
    default = Path.home() / ".cache/knlp" / f"serving-venv-{digest}"
    venv = Path(ctx.env.get("KNLP_SERVING_VENV", default))
    python = venv / "bin/python"
    if not (venv / ".knlp-complete").exists():
        ctx.run(["/usr/bin/python3.11", "-m", "venv", "--clear", venv])
        ctx.run([python, "-m", "pip", "install", "--require-hashes", "-r", lock])
        (venv / ".knlp-complete").write_text(digest + "\n")
    return python


# The recipe's check once FlashInfer is reinstalled over the one vLLM pulls in:
# both import together (FlashInfer's version check would refuse the fork's build).
IMPORT_CHECK = "import vllm, flashinfer"
IMPORT_CHECK_ENV = {"FLASHINFER_DISABLE_VERSION_CHECK": "1"}


def import_check(ctx, python):
    """vLLM and the reinstalled FlashInfer import together in the serving environment."""
    proc = ctx.run([python, "-c", IMPORT_CHECK], env=dict(ctx.env, **IMPORT_CHECK_ENV), check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(
            f"FLASHINFER_DISABLE_VERSION_CHECK=1 {python} -c {IMPORT_CHECK!r} failed after the "
            f"install: {last}"
        )
    ctx.metric(kind="import_check", ok=True, command=IMPORT_CHECK, env=IMPORT_CHECK_ENV)


def build(ctx):
    ctx.require_done("fetch")
    nvcc = toolchains().get("nvcc", {"available": False})
    if not nvcc["available"]:
        raise Skip("no_nvcc", "the fork wheels need nvcc (the CUDA toolkit); run ./setup.sh")
    ws, bazel = workspace(ctx)
    archs = ctx.env.get("KNLP_CUDA_ARCHS", "9.0")
    flags = ["--config=cuda", f"--define=KNLP_CUDA_ARCHS={archs}", *mirror_flags(ctx)]
    ctx.run([bazel, "build", *flags, "//third_party/forks:wheels"], cwd=ws)
    python = serving_venv(ctx, ws)
    ctx.run(
        [bazel, "run", *flags, "//third_party/forks:install_serving", "--", "--python", python],
        cwd=ws,
    )
    import_check(ctx, python)
    for wheel in sorted((ws / "bazel-bin/third_party/forks").glob("*_wheel/*.whl")):
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        ctx.metric(kind="wheel", wheel=wheel.name, sha256=digest)
    ctx.metric(kind="serving_env", python=str(python), nvcc=nvcc["identity"])


def run(ctx):
    if not gpus():
        raise Skip("no_gpu", "the measurements need an NVIDIA GPU; nvidia-smi lists none")
    ctx.require_done("build")
    (env,) = [r for r in ctx.stage_metrics("build") if r.get("kind") == "serving_env"]
    # The programs import tools.reproduce.measure.common from this tree.
    run_env = dict(ctx.env, PYTHONPATH=str(MEASURE_DIR.parents[2]))
    cell_json = cell.to_json(ctx.stage_set_spec["cell"])
    ctx.log(f"cell: {cell.label(ctx.stage_set_spec['cell'])}")
    for measurement in ctx.stage_set_spec["measurements"]:
        program = MEASURE_DIR / f"{measurement}.py"
        if not program.exists():
            raise PipelineError(f"measurement {measurement} has no program {program}")
        out = ctx.dir / f"{measurement}.jsonl"
        ctx.run([env["python"], program, "--out", out, "--cell", cell_json], env=run_env)
        for record in (json.loads(line) for line in out.read_text().splitlines() if line):
            ctx.metric(measurement=measurement, **record)


def report(ctx):
    data = report_lib.build(ctx.run_dir, ctx.stage_set, ctx.stage_set_spec)
    data["stages"]["report"] = {"status": "running", "done": False}
    data["stages"]["upload"] = {"status": "not_run", "done": False}
    atomic_write_json(str(ctx.run_dir / "report.json"), data)
    atomic_write_text(str(ctx.run_dir / "report.md"), report_lib.markdown(data))
    for gate in data["gates"]:
        ctx.metric(gate=gate["gate"], status=gate["status"], value=gate.get("value"))
    ctx.metric(verdict=data["verdict"])
    ctx.log(report_lib.markdown(data))


def upload(ctx):
    dest = ctx.env.get("KNLP_RESULTS_UPLOAD", "")
    if not dest:
        raise Skip(
            "no_upload_target",
            "set KNLP_RESULTS_UPLOAD to a directory or an rsync destination "
            "(e.g. prune:/data/knlp/results/decode) to archive the run",
        )
    if ":" in dest.split("/", 1)[0]:
        ctx.run(["rsync", "-a", f"{ctx.run_dir}", dest.rstrip("/") + "/"])
    else:
        shutil.copytree(ctx.run_dir, Path(dest) / ctx.run_dir.name, dirs_exist_ok=True)
    files = [p for p in ctx.run_dir.rglob("*") if p.is_file()]
    ctx.metric(
        kind="upload", dest=dest, files=len(files), bytes=sum(p.stat().st_size for p in files)
    )


STAGE_FUNCTIONS = {
    "doctor": doctor,
    "fetch": fetch,
    "build": build,
    "run": run,
    "report": report,
    "upload": upload,
}
