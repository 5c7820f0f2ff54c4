"""Which GPU architectures a compiled library really holds.

    python kernels/objcheck.py libdecode_cuda.so   # prints vendor, arch, kind, kernels

nvcc embeds its device code in the ELF section `.nv_fatbin`: a sequence of
fat binaries (magic 0xBA55ED50), each a list of entries (kind 1 = PTX, 2 =
cubin ELF) with the SM number in the entry header; a cubin is an ELF with
e_machine EM_CUDA (190) whose e_flags also carry the SM number. hipcc embeds
a clang offload bundle ("__CLANG_OFFLOAD_BUNDLE__") in `.hip_fatbin`, one
entry per target such as `hipv4-amdgcn-amd-amdhsa--gfx90a`, each an AMDGPU
code object: an ELF with e_machine EM_AMDGPU (224) whose e_flags low byte is
the EF_AMDGPU_MACH value of the gfx target. Both the container's label and
the code object's own ELF header are read, so an entry that claims an
architecture it was not compiled for is caught.
"""

import argparse
import json
import struct
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

EM_CUDA = 190
EM_AMDGPU = 224
FATBIN_MAGIC = 0xBA55ED50
BUNDLE_MAGIC = b"__CLANG_OFFLOAD_BUNDLE__"
FATBIN_COMPRESSED = 0x2000

# EF_AMDGPU_MACH_* values from the LLVM AMDGPU ELF ABI.
AMDGPU_MACH = {
    0x2F: "gfx908",
    0x30: "gfx909",
    0x32: "gfx90c",
    0x36: "gfx1030",
    0x3F: "gfx90a",
    0x40: "gfx940",
    0x41: "gfx1100",
    0x44: "gfx1101",
    0x45: "gfx1102",
}


@dataclass
class DeviceCode:
    vendor: str  # "cuda" or "rocm"
    arch: str  # "sm_90", "gfx1100", ...
    kind: str  # "cubin", "ptx", "code-object"
    elf_arch: str | None  # the architecture the code's own ELF header names
    symbols: list  # kernel symbol names found in the code (substring search)


def _sections(data):
    """{name: (offset, size)} of an ELF64 little-endian file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off, strtab_size = headers[shstrndx][4], headers[shstrndx][5]
    strtab = data[strtab_off : strtab_off + strtab_size]
    out = {}
    for h in headers:
        name = strtab[h[0] : strtab.index(b"\0", h[0])].decode()
        out[name] = (h[4], h[5])
    return out


def _elf_machine_flags(blob):
    if blob[:4] != b"\x7fELF":
        return None, None
    (machine,) = struct.unpack_from("<H", blob, 18)
    (flags,) = struct.unpack_from("<I", blob, 48)
    return machine, flags


def _cuda_elf_arch(blob):
    machine, flags = _elf_machine_flags(blob)
    if machine != EM_CUDA:
        return None
    # CUDA 12.8+ keeps the SM number in bits 8-15 of e_flags, older
    # toolkits in bits 0-7; the other byte then holds small flag values.
    for sm in ((flags >> 8) & 0xFF, flags & 0xFF):
        if sm >= 30:
            return f"sm_{sm}"
    return None


def _names(blob, names):
    return [n for n in names if n.encode() in blob]


def _cuda_entries(data):
    """(arch number, kind number, compressed, payload) of each entry of .nv_fatbin."""
    sections = _sections(data)
    if ".nv_fatbin" not in sections:
        return
    off, size = sections[".nv_fatbin"]
    end, pos = off + size, off
    while pos + 16 <= end:
        magic, _version, header_size, fat_size = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            break
        entry, stop = pos + header_size, pos + header_size + fat_size
        while entry < stop:
            kind, _v, ehsize, payload = struct.unpack_from("<HHIQ", data, entry)
            (arch_num,) = struct.unpack_from("<I", data, entry + 28)
            (flags,) = struct.unpack_from("<Q", data, entry + 40)
            blob = data[entry + ehsize : entry + ehsize + payload]
            yield arch_num, kind, bool(flags & FATBIN_COMPRESSED), blob
            entry += ehsize + payload
        pos = (stop + 7) // 8 * 8


def cuda_code(data, names=()):
    """Device code entries of nvcc's .nv_fatbin section."""
    found = []
    for arch_num, kind, compressed, blob in _cuda_entries(data):
        found.append(
            DeviceCode(
                vendor="cuda",
                arch=f"sm_{arch_num}",
                kind={1: "ptx", 2: "cubin"}.get(kind, f"kind{kind}"),
                elf_arch=None if compressed or kind != 2 else _cuda_elf_arch(blob),
                symbols=[] if compressed else _names(blob, names),
            )
        )
    return found


def cuda_cubins(path, arch, names=()):
    """The uncompressed cubins for `arch` in a library that hold every kernel of `names`."""
    data = Path(path).read_bytes()
    return [
        blob
        for arch_num, kind, compressed, blob in _cuda_entries(data)
        if f"sm_{arch_num}" == arch and kind == 2 and not compressed
        if len(_names(blob, names)) == len(names)
    ]


def rocm_code(data, names=()):
    """Device code entries of hipcc's .hip_fatbin offload bundle."""
    sections = _sections(data)
    if ".hip_fatbin" not in sections:
        return []
    off, size = sections[".hip_fatbin"]
    bundle = data[off : off + size]
    if not bundle.startswith(BUNDLE_MAGIC):
        raise ValueError(".hip_fatbin does not start with a clang offload bundle")
    (count,) = struct.unpack_from("<Q", bundle, len(BUNDLE_MAGIC))
    pos, found = len(BUNDLE_MAGIC) + 8, []
    for _ in range(count):
        entry_off, entry_size, triple_len = struct.unpack_from("<QQQ", bundle, pos)
        pos += 24
        triple = bundle[pos : pos + triple_len].decode()
        pos += triple_len
        if not triple.startswith("hip"):
            continue  # the host entry
        blob = bundle[entry_off : entry_off + entry_size]
        machine, flags = _elf_machine_flags(blob)
        found.append(
            DeviceCode(
                vendor="rocm",
                arch=triple.rsplit("--", 1)[-1].split(":")[0],
                kind="code-object",
                elf_arch=AMDGPU_MACH.get(flags & 0xFF) if machine == EM_AMDGPU else None,
                symbols=_names(blob, names),
            )
        )
    return found


def device_code(path, names=()):
    """Every device code entry of a shared library or object, of either vendor."""
    with open(path, "rb") as f:
        data = f.read()
    return cuda_code(data, names) + rocm_code(data, names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library")
    parser.add_argument("--symbol", action="append", default=[], help="kernel name to look for")
    args = parser.parse_args(argv)
    for code in device_code(args.library, args.symbol):
        print(json.dumps(asdict(code)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
