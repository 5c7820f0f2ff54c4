"""The telemetry sampler: real CPU readings on its thread, per-interval means, GPU backends.

The CPU backend is measured against this process's own CPU time: a planted
busy loop must read as utilization, a sleep as almost none. The NVML and AMD
SMI backends need their GPUs; here they read stand-in libraries written
below, which checks how readings become the record's names, not the GPUs.
"""

import os
import time
import types

import pytest

from experiments import telemetry


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def busy(cpu_s):
    """Spins until this process has used `cpu_s` more seconds of CPU; returns the wall time."""
    t0, c0 = time.monotonic(), cpu_seconds()
    while cpu_seconds() - c0 < cpu_s:
        sum(i * i for i in range(1000))
    return time.monotonic() - t0


def test_the_cpu_backend_reads_a_busy_loop_and_an_idle_wait():
    sampler = telemetry.Sampler(telemetry.CpuBackend(), interval_s=0.05)
    with sampler:
        c0, t0 = cpu_seconds(), time.monotonic()
        busy(0.4)
        own = 100.0 * (cpu_seconds() - c0) / (time.monotonic() - t0)
        loaded = sampler.means()
        # The next sample still spans the loop's last moments: leave it out of the idle mean.
        time.sleep(3 * sampler.interval_s)
        sampler.means()
        time.sleep(0.5)
        idle = sampler.means()
    assert set(loaded) == {
        "cpu/compute_util_avg",
        "cpu/memory_util_avg",
        "cpu/memory_used_avg_gb",
    }
    # Whatever share of a core the loop got on a shared machine, the sampler saw it.
    assert loaded["cpu/compute_util_avg"] > 0.5 * own > 0, (loaded, own)
    assert idle["cpu/compute_util_avg"] < 10.0, idle
    assert loaded["cpu/compute_util_avg"] > idle["cpu/compute_util_avg"] + 10.0, (loaded, idle)
    rss = telemetry.CpuBackend().rss_bytes() / telemetry.GB
    assert 0.5 * rss < idle["cpu/memory_used_avg_gb"] < 2 * rss
    assert 0 < idle["cpu/memory_util_avg"] < 100


def test_means_are_per_interval_and_reset():
    readings = iter([{"gpu/compute_util": v, "gpu/memory_used_gb": 2 * v} for v in range(100)])
    backend = types.SimpleNamespace(name="fixed", read=lambda: next(readings), close=lambda: None)
    sampler = telemetry.Sampler(backend, interval_s=60)  # no sample from the thread in this test
    sampler.start()
    for _ in range(3):
        sampler.sample()  # readings 1, 2, 3 (0 was the baseline read at start)
    assert sampler.means() == {"gpu/compute_util_avg": 2.0, "gpu/memory_used_avg_gb": 4.0}
    assert sampler.means() == {"gpu/compute_util_avg": 4.0, "gpu/memory_used_avg_gb": 8.0}
    sampler.stop()
    assert sampler.thread is None


def test_a_failing_backend_turns_telemetry_off_in_one_line():
    lines = []

    def read():
        raise OSError("device lost")

    backend = types.SimpleNamespace(name="broken", read=read, close=lambda: None)
    sampler = telemetry.Sampler(backend, interval_s=60, log=lines.append)
    sampler.sample()
    sampler.sample()
    assert lines == ["telemetry: broken reading failed (OSError: device lost); telemetry off"]
    assert sampler.means() == {}


def fake_nvml():
    rates = types.SimpleNamespace(gpu=87, memory=41)
    return types.SimpleNamespace(
        nvmlDeviceGetUtilizationRates=lambda h: rates,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=int(30.5e9)),
        nvmlShutdown=lambda: None,
    )


def fake_amdsmi():
    return types.SimpleNamespace(
        amdsmi_get_gpu_activity=lambda h: {"gfx_activity": 60, "umc_activity": 20},
        amdsmi_get_gpu_memory_usage=lambda h, kind: int(12e9) if kind == "VRAM" else 0,
        AmdSmiMemoryType=types.SimpleNamespace(VRAM="VRAM"),
        amdsmi_shut_down=lambda: None,
    )


@pytest.mark.parametrize(
    "backend,expected",
    [
        (telemetry.NvmlBackend(fake_nvml(), "h"), (87.0, 41.0, 30.5)),
        (telemetry.AmdSmiBackend(fake_amdsmi(), "h"), (60.0, 20.0, 12.0)),
    ],
)
def test_gpu_backends_report_the_groups_names(backend, expected):
    sampler = telemetry.Sampler(backend, interval_s=60)
    sampler.sample()
    means = sampler.means()
    got = tuple(
        means[k] for k in ("gpu/compute_util_avg", "gpu/memory_util_avg", "gpu/memory_used_avg_gb")
    )
    assert got == pytest.approx(expected)


def test_without_a_gpu_library_telemetry_is_off_and_says_why():
    backend, why = telemetry.gpu_backend(0, hip=True)
    if backend is not None:
        pytest.skip("amdsmi is installed and found a GPU")
    assert why.startswith(("ROCm device, and AMD SMI", "AMD SMI did not start"))
    backend, why = telemetry.gpu_backend(0, hip=False)
    if backend is not None:
        pytest.skip("NVML found a GPU")
    assert why.startswith(("CUDA device, and NVML", "NVML did not start")), why


def test_make_sampler_for_the_cpu_and_an_unknown_device():
    assert telemetry.make_sampler("cpu").name == "cpu"
    lines = []
    assert telemetry.make_sampler("meta", log=lines.append) is None
    assert lines == ["telemetry off: no backend for device type 'meta'; accepted: cpu, cuda"]
    with pytest.raises(ValueError, match="interval_s=0: accepted: a positive number"):
        telemetry.Sampler(telemetry.CpuBackend(), interval_s=0)
