"""Run profiles: every declaration of experiments/profiles.bzl, read as `Profile` objects.

`declared()` reads the file once; `resolve(name, iters, time)` gives a named
profile with a run's overrides; `markdown_table()` is the profile table of
experiments/README.md (a test keeps the two equal): `python -m
experiments.profiles`. What a profile is, and how a run overrides it:
experiments/run_profile.py.
"""

from __future__ import annotations

import functools
from pathlib import Path

from experiments.run_profile import Profile, ProfileError

PROFILES_BZL = Path(__file__).with_name("profiles.bzl")


@functools.cache
def declarations() -> dict:
    """profiles.bzl's PROFILES and DEFAULT_PROFILE, read once."""
    from tools.bazel.bzl_data import load_bzl

    return load_bzl(PROFILES_BZL)


def declared() -> dict[str, Profile]:
    """Every declared profile, in declaration order."""
    return {n: Profile.from_declaration(n, d) for n, d in declarations()["PROFILES"].items()}


def default_profile() -> str:
    return declarations()["DEFAULT_PROFILE"]


def get_profile(name: str) -> Profile:
    profiles = declarations()["PROFILES"]
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r}; valid profiles: {', '.join(profiles)}")
    return Profile.from_declaration(name, profiles[name])


def resolve(name: str, iters: int | None = None, time: str | None = None) -> Profile:
    """The named profile with --iters / --time applied."""
    return get_profile(name).overridden(iters, time)


def dims_text(dims: str | dict) -> str:
    """How a profile's model size reads in a table: "real" or "4 x 128, 4 heads"."""
    if dims == "real":
        return "real"
    return f"{dims['n_layer']} x {dims['n_embd']}, {dims['n_head']} heads"


def markdown_table() -> str:
    """The profile table of experiments/README.md (a test keeps the two equal)."""
    rows = [
        "| profile | device | GPUs | dims | dataset | batch x accum x GPUs x block | iters | "
        "eval | LR | dtype | compile |",
        "|---|---|---:|---|---|---|---:|---|---|---|---|",
    ]
    for p in declared().values():
        t = p.train
        rows.append(
            f"| `{p.name}` | {p.device} | {p.gpus} | {dims_text(p.dims)} | {p.dataset} | "
            f"{t.batch_size} x {t.grad_accum} x {max(1, p.gpus)} x {p.block_size} "
            f"= {p.effective_batch_tokens:,} tokens | {t.max_iters:,} | "
            f"{t.eval_iters} batches / {t.eval_interval} iters | {t.lr:g} -> {t.min_lr:g}, "
            f"warmup {t.warmup_iters} | {t.dtype} | {'yes' if t.compile else 'no'} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
