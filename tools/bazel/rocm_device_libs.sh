#!/usr/bin/env bash
# Gives hipcc a complete ROCm device-library directory: every bitcode library
# of the installed ROCm, plus oclc_isa_version_1100.bc for gfx1100 (W7900),
# which ROCm 5.2 lacks. The gfx1036 library differs from the gfx1100 one only
# in the ISA version constant (10306 -> 11000), so it is disassembled, that
# constant rewritten, and reassembled.
#
#   rocm_device_libs.sh SOURCE_DIR OUT_DIR
set -euo pipefail
src=$1
out=$2
for tool in llvm-dis-15 llvm-as-15; do
  command -v "$tool" >/dev/null ||
    { echo "knlp: $tool not found; it derives the gfx1100 device library. Run ./setup.sh (package llvm-15)." >&2; exit 1; }
done
[ -f "$src/oclc_isa_version_1036.bc" ] ||
  { echo "knlp: $src/oclc_isa_version_1036.bc not found; install hipcc with ./setup.sh (ROCm device libraries)." >&2; exit 1; }
mkdir -p "$out"
cp "$src"/*.bc "$out"/
if [ ! -f "$src/oclc_isa_version_1100.bc" ]; then
  llvm-dis-15 "$src/oclc_isa_version_1036.bc" -o "$out/isa1036.ll"
  grep -q 'i32 10306' "$out/isa1036.ll" ||
    { echo "knlp: the ISA constant 10306 is not in $src/oclc_isa_version_1036.bc; cannot derive gfx1100." >&2; exit 1; }
  sed 's/i32 10306/i32 11000/' "$out/isa1036.ll" >"$out/isa1100.ll"
  llvm-as-15 "$out/isa1100.ll" -o "$out/oclc_isa_version_1100.bc"
  rm "$out/isa1036.ll" "$out/isa1100.ll"
fi
