"""Shared test fixtures (testonly): the gate's built experiment."""

import os
from pathlib import Path


def gate_runfiles() -> Path:
    """The runfiles root of //experiments:gate_ratio, the gate's built experiment: the test's
    own runfiles under Bazel (a data dependency), bazel-bin's under plain pytest."""
    import pytest

    root = Path(__file__).resolve().parent.parent
    for candidate in (
        Path(os.environ.get("TEST_SRCDIR", "/nonexistent")) / "knlp",
        root / "bazel-bin" / "experiments" / "gate_ratio.install.sh.runfiles" / "knlp",
    ):
        if (candidate / "experiments" / "gate_ratio").is_dir():
            return candidate
    pytest.skip("//experiments:gate_ratio is not built (bazel build //experiments:gate_ratio)")
