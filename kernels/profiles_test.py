"""kernels/README.md's GPU profile table says what tools/bazel/gpu_profiles.bzl says."""

import re
from pathlib import Path

import pytest

from kernels import library


def load_profiles():
    table = library.gpu_profiles()
    if table is None:
        pytest.skip("gpu_profiles.json not built (bazel build //tools/bazel:gpu_profiles)")
    return table


def readme_rows():
    text = Path("kernels/README.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`(\w+)`\s*\|\s*(.+?)\s*\|\s*(\w+)\s*\|\s*`(\w+)`\s*\|", line)
        if m:
            rows[m.group(1)] = {"gpu": m.group(2), "vendor": m.group(3), "arch": m.group(4)}
    return rows


def test_readme_table_is_gpu_profiles():
    assert readme_rows() == load_profiles()
