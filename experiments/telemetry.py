"""Device telemetry: a sampler on its own thread, averaged per log interval for the record.

The group compares runs by `gpu/memory_util_avg`, `gpu/compute_util_avg` and
`gpu/memory_used_avg_gb`. A `Sampler` reads one backend every `interval_s`
seconds on a daemon thread and `means()` returns the mean of each reading
since the previous call, under those names, so the trainer merges one mean
per log interval into each record of metrics.jsonl (and the tracker).

Backends, chosen by `make_sampler(device)`:
  * NVIDIA (CUDA): NVML through the `nvidia-ml-py` package (`pynvml`):
    compute and memory-controller utilization in percent, memory used in GB;
  * AMD (a ROCm build of torch): AMD SMI's Python library (`amdsmi`) when it
    is installed, the same three readings;
  * CPU: this process's CPU utilization (percent of one core, from its CPU
    time over wall time between samples; two busy threads read 200), its
    resident set size in GB and that as a percent of physical memory, from
    /proc/self/statm. Real readings, so the code path runs in the CPU gate.
A GPU whose library is missing or fails to start gets no sampler, and one line
says telemetry is off and why.
"""

from __future__ import annotations

import os
import threading
import time

GB = 1e9


def mean_name(key: str) -> str:
    """The name of a reading's mean: gpu/compute_util -> gpu/compute_util_avg, *_gb -> *_avg_gb."""
    if key.endswith("_gb"):
        return key[: -len("_gb")] + "_avg_gb"
    return key + "_avg"


class CpuBackend:
    """This process: CPU utilization between reads, resident memory."""

    name = "cpu"

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.total = os.sysconf("SC_PHYS_PAGES") * self.page
        self.last = self._clock()

    @staticmethod
    def _clock():
        t = os.times()
        return time.monotonic(), t.user + t.system

    def rss_bytes(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def read(self) -> dict:
        (wall0, cpu0), (wall1, cpu1) = self.last, self._clock()
        self.last = (wall1, cpu1)
        util = 100.0 * (cpu1 - cpu0) / (wall1 - wall0) if wall1 > wall0 else 0.0
        rss = self.rss_bytes()
        return {
            "cpu/compute_util": util,
            "cpu/memory_util": 100.0 * rss / self.total,
            "cpu/memory_used_gb": rss / GB,
        }

    def close(self):
        pass


class NvmlBackend:
    """One NVIDIA GPU through NVML (nvidia-ml-py)."""

    name = "nvml"

    def __init__(self, pynvml, handle):
        self.nvml, self.handle = pynvml, handle

    def read(self) -> dict:
        rates = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
        memory = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
        return {
            "gpu/compute_util": float(rates.gpu),
            "gpu/memory_util": float(rates.memory),
            "gpu/memory_used_gb": memory.used / GB,
        }

    def close(self):
        self.nvml.nvmlShutdown()


class AmdSmiBackend:
    """One AMD GPU through AMD SMI's Python library (amdsmi)."""

    name = "amdsmi"

    def __init__(self, amdsmi, handle):
        self.smi, self.handle = amdsmi, handle

    def read(self) -> dict:
        activity = self.smi.amdsmi_get_gpu_activity(self.handle)
        used = self.smi.amdsmi_get_gpu_memory_usage(self.handle, self.smi.AmdSmiMemoryType.VRAM)
        return {
            "gpu/compute_util": float(activity["gfx_activity"]),
            "gpu/memory_util": float(activity["umc_activity"]),
            "gpu/memory_used_gb": used / GB,
        }

    def close(self):
        self.smi.amdsmi_shut_down()


def nvml_handle(pynvml, index: int):
    """NVML's handle of torch's CUDA device `index` (by UUID, so CUDA_VISIBLE_DEVICES holds)."""
    import torch

    uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")
    if uuid:
        name = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(name)
        except pynvml.NVMLError:
            pass
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if index < len(ids) and ids[index].isdigit():
        index = int(ids[index])
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def gpu_backend(index: int, hip: bool):
    """(backend, None) for GPU `index`, or (None, why telemetry is off)."""
    if hip:
        try:
            import amdsmi
        except ImportError:
            return None, "ROCm device, and AMD SMI's Python library (amdsmi) is not installed"
        try:
            amdsmi.amdsmi_init()
            return AmdSmiBackend(amdsmi, amdsmi.amdsmi_get_processor_handles()[index]), None
        except Exception as e:  # noqa: BLE001 - any library failure turns telemetry off
            return None, f"AMD SMI did not start: {type(e).__name__}: {e}"
    try:
        import pynvml
    except ImportError:
        return None, "CUDA device, and NVML's Python package (nvidia-ml-py) is not installed"
    try:
        pynvml.nvmlInit()
        return NvmlBackend(pynvml, nvml_handle(pynvml, index)), None
    except Exception as e:  # noqa: BLE001 - any library failure turns telemetry off
        return None, f"NVML did not start: {type(e).__name__}: {e}"


class Sampler:
    """Reads `backend` every `interval_s` seconds on a daemon thread; `means()` per interval."""

    def __init__(self, backend, interval_s: float = 1.0, log=print):
        if not interval_s > 0:
            raise ValueError(f"interval_s={interval_s!r}: accepted: a positive number of seconds")
        self.backend, self.interval_s, self.log = backend, interval_s, log
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = None
        self.error = None
        self._reset()

    @property
    def name(self) -> str:
        return self.backend.name

    def _reset(self):
        self.sums, self.counts = {}, {}

    def _add(self, reading: dict):
        with self.lock:
            for key, value in reading.items():
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1

    def sample(self):
        """One reading, added to the current interval; a failing backend stops the sampler."""
        if self.error:
            return
        try:
            self._add(self.backend.read())
        except Exception as e:  # noqa: BLE001 - one line, then telemetry is off
            self.error = f"{type(e).__name__}: {e}"
            self.stopping.set()
            self.log(f"telemetry: {self.name} reading failed ({self.error}); telemetry off")

    def _loop(self):
        while not self.stopping.wait(self.interval_s):
            self.sample()

    def start(self) -> Sampler:
        if self.thread is None:
            self.stopping.clear()
            self.backend.read()  # the baseline of any reading taken between samples
            self.thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
            self.thread.start()
        return self

    def stop(self):
        if self.thread is not None:
            self.stopping.set()
            self.thread.join()
            self.thread = None
            self.backend.close()

    def means(self) -> dict:
        """Mean of each reading since the last call (one reading now if none was taken)."""
        with self.lock:
            empty = not self.counts
        if empty and self.thread is not None:
            self.sample()
        with self.lock:
            out = {mean_name(k): self.sums[k] / self.counts[k] for k in self.sums}
            self._reset()
        return out

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def make_sampler(device, interval_s: float = 1.0, log=print) -> Sampler | None:
    """A sampler for `device` ("cpu", "cuda", "cuda:1"), or None after a line saying why."""
    import torch

    device = torch.device(device)
    if device.type == "cpu":
        return Sampler(CpuBackend(), interval_s, log)
    if device.type != "cuda":
        log(f"telemetry off: no backend for device type {device.type!r}; accepted: cpu, cuda")
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    backend, why = gpu_backend(index, hip=torch.version.hip is not None)
    if backend is None:
        log(f"telemetry off: {why}")
        return None
    return Sampler(backend, interval_s, log)
