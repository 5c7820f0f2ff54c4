"""Reads the SASS of the decode kernels and checks how they load the cache.

    python kernels/sass.py libdecode_cuda.so   # per kernel: global loads by width, spills

The decode kernels are memory-bound, so the width of their global loads
matters: 16 bytes per load (`LDG.E.128`, or `LDGSTS.E.BYPASS.128` for a
cp.async copy into shared memory) for both K and V, no narrower 8-byte loads
(the previous kernel read V 8 bytes at a time, `LDG.E.64`), and no local
memory (`LDL`/`STL`: register spills or arrays the compiler could not keep in
registers). SASS has no notion of which load reads K and which V, so the
checks are: at least two 128-bit global loads (K and V), no 64-bit ones, no
local memory. Narrower loads (4 bytes: seq_lens, the page table, V scales)
are allowed.

nvdisasm comes from the PyPI wheel nvidia-cuda-nvdisasm (in the Python lock)
or a CUDA toolkit; `KNLP_NVDISASM` overrides both.
"""

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

# Kernels that read the cache: the one-pass decode_kernel (and decode_split_kernel,
# its predecessor's name, so the check can be run against the old source too).
CACHE_READERS = re.compile(r"decode_(?:split_)?kernel")
_FUNCTION = re.compile(r"^\.text\.(\S+):\s*$", re.M)
_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)")


def find_nvdisasm():
    """The path of nvdisasm, or a FileNotFoundError saying where it was looked for."""
    if os.environ.get("KNLP_NVDISASM"):
        return os.environ["KNLP_NVDISASM"]
    looked = ["$KNLP_NVDISASM"]
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for candidate in sorted(Path(root).glob("cu*/bin/nvdisasm")):
            return str(candidate)
        looked.append(f"{root}/cu*/bin")
    for directory in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if directory and (Path(directory) / "bin/nvdisasm").exists():
            return str(Path(directory) / "bin/nvdisasm")
    on_path = shutil.which("nvdisasm")
    if on_path:
        return on_path
    raise FileNotFoundError(
        f"nvdisasm not found (looked in {', '.join(looked)}, $CUDA_PATH/bin, /usr/local/cuda/bin, "
        "PATH); install the nvidia-cuda-nvdisasm wheel from the Python lock or a CUDA toolkit"
    )


def disassemble(cubin, nvdisasm=None):
    """nvdisasm's text for one cubin (bytes)."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        proc = subprocess.run(
            [nvdisasm or find_nvdisasm(), "-c", f.name], capture_output=True, text=True
        )
    if proc.returncode != 0:
        raise RuntimeError(f"nvdisasm failed: {proc.stderr.strip()}")
    return proc.stdout


def functions(sass):
    """{mangled function name: [opcode, ...]} of a disassembly."""
    marks = list(_FUNCTION.finditer(sass))
    out = {}
    for i, mark in enumerate(marks):
        body = sass[mark.end() : marks[i + 1].start() if i + 1 < len(marks) else len(sass)]
        out[mark.group(1)] = _INSTRUCTION.findall(body)
    return out


def load_width(opcode):
    """Bits per thread of a global load opcode (LDG, LDGSTS), or None for anything else."""
    parts = opcode.split(".")
    if parts[0] not in ("LDG", "LDGSTS"):
        return None
    for part in parts[1:]:
        if part in ("64", "128"):
            return int(part)
        if part in ("U8", "S8"):
            return 8
        if part in ("U16", "S16"):
            return 16
    return 32


def summary(opcodes):
    """Global loads by width and local-memory instructions of one function."""
    widths = Counter(w for w in map(load_width, opcodes) if w is not None)
    local = sum(1 for op in opcodes if op.split(".")[0] in ("LDL", "STL"))
    return {"global_loads_by_bits": dict(sorted(widths.items())), "local_memory": local}


def problems(sass):
    """Sentences naming each cache-reading kernel whose loads break the rules above."""
    found, checked = [], 0
    for name, opcodes in functions(sass).items():
        if not CACHE_READERS.search(name):
            continue
        checked += 1
        s = summary(opcodes)
        widths = s["global_loads_by_bits"]
        if widths.get(128, 0) < 2:
            found.append(f"{name}: {widths.get(128, 0)} 128-bit global loads; K and V need >= 2")
        if widths.get(64, 0):
            found.append(f"{name}: {widths[64]} 64-bit global loads; accepted: 128-bit K and V")
        if s["local_memory"]:
            found.append(f"{name}: {s['local_memory']} local-memory instructions (LDL/STL)")
    if not checked:
        found.append("no decode kernel in the disassembly")
    return found


def main(argv=None):
    from kernels import objcheck

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", help="libdecode_cuda.so")
    args = parser.parse_args(argv)
    data = Path(args.library).read_bytes()
    status = 0
    for code in objcheck.cuda_code(data, ["kv_write_kernel"]):
        if code.kind != "cubin" or not code.symbols:
            continue
        for cubin in objcheck.cuda_cubins(args.library, code.arch, ["kv_write_kernel"]):
            sass = disassemble(cubin)
            for name, opcodes in functions(sass).items():
                if CACHE_READERS.search(name):
                    print(code.arch, name, summary(opcodes))
            for problem in problems(sass):
                print(f"{code.arch}: {problem}", file=sys.stderr)
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
