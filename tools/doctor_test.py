"""The doctor names what is missing and which targets need it."""

from tools import doctor

VENV = {
    "python_version": "3.11.2",
    "interpreter": "/usr/bin/python3.11",
    "accelerator": "cpu",
    "lock": "//third_party/python:requirements_cpu.lock",
    "lock_sha256": "ab" * 32,
    "venv": "/var/tmp/knlp/venv-x",
}


def all_tools():
    return {
        tool: {"available": True, "version": f"{tool} 1.0", "path": f"/usr/bin/{tool}"}
        for tool in doctor.NEEDS
    }


def test_everything_present_is_not_blocking():
    lines, blocking = doctor.report(VENV, all_tools(), ["NVIDIA H100"], "bazel 4.2.3")
    assert blocking == 0
    assert any(line.startswith("gpu") and "H100" in line for line in lines)
    assert any("3.11.2" in line and "cpu" in line for line in lines)


def test_missing_tool_names_its_targets_and_the_fix():
    tools = all_tools()
    tools["hipcc"] = {"available": False}
    lines, blocking = doctor.report(VENV, tools, [], "bazel 4.2.3")
    assert blocking == 1
    (line,) = [line for line in lines if line.startswith("hipcc")]
    assert "MISSING" in line and "//kernels" in line and "./setup.sh" in line


def test_no_gpu_is_reported_not_blocking():
    lines, blocking = doctor.report(VENV, all_tools(), [], "bazel 4.2.3")
    assert blocking == 0
    assert any("none" in line for line in lines if line.startswith("gpu"))


def test_nvcc_hint_does_not_promise_setup_installs_it():
    tools = all_tools()
    tools["nvcc"] = {"available": False}
    lines, blocking = doctor.report(VENV, tools, [], "bazel 4.2.3")
    (line,) = [line for line in lines if line.startswith("nvcc")]
    assert blocking == 1 and "NVIDIA" in line and "setup.sh" not in line
