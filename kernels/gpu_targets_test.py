"""kernels/README.md's GPU target table says what tools/bazel/gpu_targets.bzl says."""

import re
from pathlib import Path

import pytest

from kernels import library


def load_targets():
    table = library.gpu_targets()
    if table is None:
        pytest.skip("gpu_targets.json not built (bazel build //tools/bazel:gpu_targets)")
    return table


def readme_rows():
    text = Path("kernels/README.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`(\w+)`\s*\|\s*(.+?)\s*\|\s*(\w+)\s*\|\s*`(\w+)`\s*\|", line)
        if m:
            rows[m.group(1)] = {"gpu": m.group(2), "vendor": m.group(3), "arch": m.group(4)}
    return rows


def test_readme_table_is_gpu_targets():
    assert readme_rows() == load_targets()
