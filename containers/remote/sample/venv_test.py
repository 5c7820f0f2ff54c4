"""Passes when it runs on the toolchain's venv: a venv that venv.py completed."""

import sys
from pathlib import Path

prefix = Path(sys.prefix)
marker = prefix / ".knlp-complete"
print(f"interpreter {sys.executable}, venv {prefix}")
if sys.prefix == sys.base_prefix:
    sys.exit(f"not in a venv: sys.prefix is {sys.prefix}")
if not marker.is_file():
    sys.exit(f"{prefix} has no {marker.name}: not a venv that tools/bazel/venv.py completed")
