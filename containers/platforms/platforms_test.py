"""The execution platforms route work as containers/platforms/pools.bzl says.

Reads the GPU target table as built (//containers:images, which carries every
platform's exec properties and the order Bazel tries the execution platforms
in under `--config=remote-exec`), the workspace .bazelrc and WORKSPACE:
`--config=remote-exec` must put the CPU pool first, WORKSPACE must register
the host and then every GPU target's platform (through pools.bzl), the CPU
pool must name no GPU, and each GPU platform exactly its own.
"""

import json
import re
from pathlib import Path

REPO = Path(__file__).parent.parent.parent
MANIFEST = json.loads((REPO / "containers" / "images.json").read_text())
CPU = "//containers/platforms:cpu"


def rc_values(config, flag):
    """The values `build:<config> --<flag>=` takes in .bazelrc, in order."""
    pattern = re.compile(rf"^build:{config} --{flag}=(\S*)$", re.M)
    return pattern.findall((REPO / ".bazelrc").read_text())


def test_remote_exec_tries_the_cpu_pool_then_the_host_then_every_gpu():
    order = MANIFEST["execution_platforms"]
    assert order[:2] == [CPU, "@local_config_platform//:host"]
    assert sorted(order[2:]) == sorted("//containers/platforms:" + t for t in MANIFEST["targets"])
    assert rc_values("remote-exec", "extra_execution_platforms") == [CPU]
    assert rc_values("remote-exec", "host_platform") == [CPU]


def test_workspace_registers_the_host_and_the_gpu_platforms():
    text = (REPO / "WORKSPACE").read_text()
    assert re.search(r'^load\("//containers/platforms:pools.bzl", "register_pools"\)$', text, re.M)
    assert re.search(r"^register_pools\(\)$", text, re.M)
    assert "register_execution_platforms(" not in text, "platforms are registered by pools.bzl"


def test_remote_exec_names_the_image_venv():
    venv_root = MANIFEST["image_common"]["venv_root"]
    assert rc_values("remote-exec", "repo_env") == [f"KNLP_VENV_ROOT={venv_root}"]


def test_the_loopback_worker_tries_the_cpu_pool_first():
    assert rc_values("remote-exec-local", "extra_execution_platforms") == [CPU]
    assert rc_values("remote-exec-local", "host_platform") == [CPU]
    assert rc_values("remote-exec-local", "remote_executor") == ["grpc://127.0.0.1:8980"]


def test_cpu_pool_names_no_gpu():
    cpu = MANIFEST["cpu_exec_properties"]
    assert cpu["pool"] == "cpu"
    assert "gpu" not in cpu and "container-image" not in cpu


def test_each_gpu_platform_names_its_own_target():
    for target, entry in MANIFEST["targets"].items():
        props = entry["exec_properties"]
        assert props["gpu"] == target and props["pool"] == "gpu", (target, props)
        assert props["OSFamily"] == MANIFEST["cpu_exec_properties"]["OSFamily"]
