"""The decode kernels' SASS in libdecode_cuda.so: 128-bit K and V loads, no spills.

Disassembles every architecture's cubin of the built library with nvdisasm
(kernels/sass.py) and applies sass.problems: at least two 128-bit global
loads, no 64-bit ones and no local memory in each kernel that reads the
cache. The parser itself is checked on a fixed excerpt first, so a change in
nvdisasm's format fails here instead of silently matching nothing.
"""

import json

from kernels import library, objcheck, sass

EXCERPT = """
.text._ZN4knlp13decode_kernelILi128ELi7EEEvNS0_10DecodeArgsE:
        /*0040*/                   LDG.E R0, desc[UR10][R2.64] ;
        /*0050*/              @!P0 LDGSTS.E.BYPASS.LTC128B.128 [R5], desc[UR8][R6.64] ;
        /*0060*/                   LDG.E.128 R8, desc[UR8][R10.64] ;
        /*0070*/                   LDGDEPBAR ;
.text._ZN4knlp19decode_split_kernelILi128ELi8EEEvNS0_10DecodeArgsE:
        /*0000*/                   LDG.E.128 R8, desc[UR8][R10.64] ;
        /*0010*/                   LDG.E.64 R4, desc[UR8][R12.64] ;
        /*0020*/                   STL [R1+0xc], R24 ;
        /*0030*/               @P1 LDG.E.U16 R3, desc[UR8][R2.64] ;
.text._ZN4knlp15kv_write_kernelEPKt:
        /*0050*/                   LDG.E.64 R24, desc[UR8][R2.64] ;
"""


def test_parser_on_a_fixed_excerpt():
    fns = sass.functions(EXCERPT)
    assert len(fns) == 3
    one_pass, split, _writer = fns.values()
    assert sass.summary(one_pass) == {
        "global_loads_by_bits": {32: 1, 128: 2},
        "local_memory": 0,
    }
    assert sass.summary(split) == {
        "global_loads_by_bits": {16: 1, 64: 1, 128: 1},
        "local_memory": 1,
    }
    found = sass.problems(EXCERPT)
    assert [p.split(":")[0] for p in found] == [list(fns)[1]] * 3, found  # not the writer's 64
    assert sass.problems(".text._Z1fv:\n") == ["no decode kernel in the disassembly"]


def _archs():
    return json.loads(library.arch_manifest_path("cuda").read_text())["archs"]


def test_decode_kernels_load_16_bytes_and_never_spill():
    path = library.library_path("cuda")
    nvdisasm = sass.find_nvdisasm()
    archs = _archs()
    assert archs, "the CUDA library names no architecture"
    for arch in archs:
        cubins = objcheck.cuda_cubins(path, arch, ["kv_write_kernel"])
        assert cubins, f"no uncompressed {arch} cubin with the kernels in {path}"
        for cubin in cubins:
            text = sass.disassemble(cubin, nvdisasm)
            readers = [n for n in sass.functions(text) if sass.CACHE_READERS.search(n)]
            assert len(readers) >= 16, f"{arch}: {len(readers)} decode kernels, expected 16"
            assert sass.problems(text) == [], arch
