"""The ablation registry, read from steps.bzl: steps, variants, and the models they build.

steps.bzl is the single declaration of every RATIO step and variant prefix;
Bazel loads it to generate the per-step tests and the run actions, and this
module evaluates the same literals into `Step` objects (step.py). A step is
validated when it is asked for, so a broken step fails its own test (naming
it) and no other.

    from experiments.ablations import registry
    s = registry.step(5)                       # Step(id=5, variant="RA", ...)
    model = registry.build_model(5)            # GPT2_RA at 124M with the step's options
    model = registry.build_model(5, dims="tiny")
"""

import functools
from pathlib import Path

from experiments.ablations import step as step_lib
from experiments.ablations.step import TINY, Step, StepError
from tools.bazel.bzl_data import load_bzl

# Next to this module in the runfiles (a data dependency), never resolved back
# into the source tree.
STEPS_BZL = Path(__file__).with_name("steps.bzl")

__all__ = ["TINY", "STEPS_BZL", "Registry", "Step", "StepError", "load_bzl"]


class Registry:
    def __init__(self, path=STEPS_BZL):
        data = load_bzl(path)
        self.path = Path(path)
        self.variants = data["VARIANTS"]
        self.steps = data["RATIO_STEPS"]
        self.base = data["RATIO_BASE"]

    def step_ids(self):
        return sorted(self.steps)

    def variant(self, prefix):
        if prefix not in self.variants:
            raise StepError(
                f"unknown variant prefix {prefix!r}; valid prefixes: {', '.join(self.variants)}"
            )
        return self.variants[prefix]

    def step(self, step_id):
        """The validated Step; an unknown id lists the valid ones."""
        try:
            key = int(step_id)
        except (TypeError, ValueError):
            key = None
        if key not in self.steps:
            valid = ", ".join(str(i) for i in self.step_ids())
            raise StepError(f"unknown RATIO step {step_id!r}; valid step ids: {valid}")
        spec = self.steps[key]
        where = f"RATIO step {key} in {self.path.name}"
        variant = self.variants.get(spec.get("variant"))
        if variant is None:
            raise StepError(
                f"{where} is invalid: unknown variant prefix {spec.get('variant')!r}; "
                f"valid prefixes: {', '.join(self.variants)}"
            )
        return Step.from_parts(key, spec, variant, self.base, where)

    def variant_step(self, prefix):
        """A variant prefix (B, RA, MLA, ...) as a Step on the RATIO base, with no step options."""
        v = self.variant(prefix)
        return Step.from_parts(-1, variant_spec(prefix, v), v, self.base)

    def config(self, step, dims="real"):
        return step_lib.config(step, dims)

    def build_model(self, step_or_id, dims="real", config=None):
        """The model a step builds (on the current default device).

        `config`, when given, is the step's GPT2Config as a run resolved it
        (experiments/gpt2_step.py: the run profile's block size and vocabulary).
        """
        s = step_or_id if isinstance(step_or_id, Step) else self.step(step_or_id)
        try:
            cfg = config or step_lib.config(s, dims)
        except ValueError as e:
            raise StepError(f"RATIO step {s.id} in {self.path.name} is invalid: {e}") from e
        try:
            return step_lib.build_model(s, cfg)
        except StepError as e:
            raise StepError(f"RATIO step {s.id} in {self.path.name} is invalid: {e}") from e


def variant_spec(prefix, variant):
    """The step entry of a variant run: the prefix's own options, no step options."""
    return {"variant": prefix, "options": {}, "pruning": None, "doc": variant.get("doc", "")}


@functools.cache
def get(path=STEPS_BZL):
    return Registry(path)


def step(step_id):
    return get().step(step_id)


def step_ids():
    return get().step_ids()


def config(step_obj, dims="real"):
    return step_lib.config(step_obj, dims)


def build_model(step_or_id, dims="real", config=None):
    return get().build_model(step_or_id, dims, config)


def mlp_width(step_obj):
    return config(step_obj).mlp_dim


def markdown_table(only=None):
    """The step table of experiments/ablations/README.md, generated from steps.bzl.

    `only`, when given, limits the rows to those step ids.
    """
    rows = [
        "| step | variant | class | MLP | options | pruning | enables |",
        "|---:|---|---|---:|---|---|---|",
    ]
    reg = get()
    for i in reg.step_ids():
        if only is not None and i not in only:
            continue
        s = reg.step(i)
        opts = ", ".join(
            f"{k}={v}" for k, v in reg.steps[i].get("options", {}).items() if k != "mlp_ratio"
        )
        prune = "-" if not s.pruning else f"{s.pruning['variant']} {s.pruning['target']:.0%}"
        ratio = reg.steps[i].get("options", {}).get("mlp_ratio", 4.0)
        rows.append(
            f"| {i} | {s.variant} | {s.class_name} | {ratio} ({mlp_width(s)}) | "
            f"{opts or '-'} | {prune} | {s.doc} |"
        )
    return "\n".join(rows) + "\n"
