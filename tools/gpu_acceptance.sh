#!/usr/bin/env bash
# The GPU acceptance run: tools/gpu_acceptance.sh [--dry-run] OUTDIR
# Needs python3 (torch, numpy, pytest) and nvcc, not Bazel; see tools/gpu_acceptance.py.
# PYTHON overrides the interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${PYTHON:-python3}" "$here/gpu_acceptance.py" "$@"
