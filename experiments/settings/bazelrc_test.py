"""The .bazelrc lines derived from the declarations: an alias per setting, a config per profile.

Every build setting of experiments/settings/BUILD.bazel has its short name
(`--flag_alias=steps=//experiments/settings:steps`), and every profile of
experiments/profiles.bzl a config that selects it and the venv of its
accelerator (`build:h100 --//experiments/settings:profile=h100`, `--config=cuda`),
so `--config=h100` says where a run goes in one flag.
"""

import re
from pathlib import Path

from tools.bazel.bzl_data import load_bzl

ROOT = Path(__file__).resolve().parent.parent.parent
SETTINGS = "//experiments/settings"


def rc_lines():
    return [line.strip() for line in (ROOT / ".bazelrc").read_text().splitlines()]


def test_every_setting_has_its_short_name():
    build = (ROOT / "experiments" / "settings" / "BUILD.bazel").read_text()
    names = re.findall(r'_setting\(\s*name = "([a-z_]+)"', build)
    assert names == ["profile", "steps", "seeds", "seed", "iters", "time", "tracker"]
    for name in names:
        assert f"build --flag_alias={name}={SETTINGS}:{name}" in rc_lines(), name


def test_every_profile_has_a_config_that_selects_it_and_its_venv():
    lines = rc_lines()
    profiles = load_bzl(ROOT / "experiments" / "profiles.bzl")["PROFILES"]
    declared = {line.split()[0] for line in lines if line.startswith("build:")}
    for name, p in profiles.items():
        assert f"build:{name} --{SETTINGS}:profile={name}" in lines, name
        venv = f"build:{name} --config={p['accelerator']}"
        assert (venv in lines) == (p["accelerator"] != "cpu"), name
        assert f"build:{p['accelerator']}" in declared or p["accelerator"] == "cpu"
