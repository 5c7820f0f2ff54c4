"""The ablation registry, read from steps.bzl: steps, variants, and the models they build.

steps.bzl is the single declaration of every RATIO step and variant prefix;
Bazel loads it to generate the per-step tests, and this module evaluates the
same literals. A step is validated when it is asked for, so a broken step
fails its own test (naming it) and no other.

    from experiments.ablations import registry
    s = registry.step(5)                       # Step(id=5, variant="RA", ...)
    model = registry.build_model(5)            # GPT2_RA at 124M with the step's options
    model = registry.build_model(5, dims="tiny")
"""

import functools
from dataclasses import dataclass, field
from pathlib import Path

from models.gpt2.config import preset, round_to_multiple
from tools.bazel.bzl_data import load_bzl

# Next to this module in the runfiles (a data dependency), never resolved back
# into the source tree.
STEPS_BZL = Path(__file__).with_name("steps.bzl")

# The numeric dry-run's dimensions: small enough for a CPU, big enough that
# every mechanism is exercised (bands, top-k, latents scale with them).
TINY = {"n_layer": 2, "n_head": 2, "n_embd": 128, "block_size": 64, "vocab_size": 256}
PRUNING_KEYS = ("variant", "target", "warmup", "ramp_end", "frequency")


class StepError(ValueError):
    """A step that is unknown or declared with options that cannot build."""


@dataclass(frozen=True)
class Step:
    id: int
    variant: str
    class_name: str
    options: dict = field(hash=False)  # GPT2Config options: base, then variant, then step
    optimizer: str = "adamwspam"
    pruning: dict | None = field(default=None, hash=False)
    doc: str = ""

    @property
    def name(self):
        return f"step {self.id} ({self.variant}: {self.doc})"


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
        try:
            return self._validate(key, spec)
        except (ValueError, TypeError, KeyError) as e:
            raise StepError(f"RATIO step {key} in {self.path.name} is invalid: {e}") from e

    def _validate(self, key, spec):
        unknown = set(spec) - {"variant", "options", "optimizer", "pruning", "doc"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        variant = self.variant(spec["variant"])
        options = {**self.base["options"], **variant["options"], **spec.get("options", {})}
        step = Step(
            id=key,
            variant=spec["variant"],
            class_name=variant["class"],
            options=options,
            optimizer=spec.get("optimizer", "adamwspam"),
            pruning=spec.get("pruning"),
            doc=spec.get("doc", ""),
        )
        if step.pruning is not None:
            bad = set(step.pruning) - set(PRUNING_KEYS)
            if bad:
                raise ValueError(f"unknown pruning keys {sorted(bad)}; accepted: {PRUNING_KEYS}")
        self.config(step)  # option names and values
        return step

    def config(self, step, dims="real"):
        """The GPT2Config a step trains at ("real"), dry-runs at ("tiny"), or at a given trunk.

        A trunk is a dict of the five TINY keys (a run profile's size,
        experiments/gpt2_common.py); the step's mechanism sizes (latent, RA
        band) scale with it as they do for "tiny", dropout is off.
        """
        cfg = preset(self.base["preset"], **step.options)
        if dims == "real":
            return cfg
        trunk = TINY if dims == "tiny" else dims
        if not isinstance(trunk, dict) or set(trunk) != set(TINY):
            raise ValueError(
                f"unknown dims {dims!r}; accepted: real, tiny, a dict of {sorted(TINY)}"
            )
        scale = trunk["n_embd"] / cfg.n_embd
        small = dict(trunk, dropout=0.0)
        if "d_latent" in step.options:
            small["d_latent"] = round_to_multiple(cfg.d_latent * scale, 32)
        if "ra_band" in step.options:
            small["ra_band"] = max(8, cfg.ra_band * trunk["block_size"] // cfg.block_size)
        return cfg.with_options(**small)

    def build_model(self, step_or_id, dims="real", config=None):
        """The model a step builds (on the current default device).

        `config`, when given, is the step's GPT2Config as a run resolved it
        (experiments/gpt2_common.py: the run profile's block size and vocabulary).
        """
        from models.gpt2 import zoo

        s = step_or_id if isinstance(step_or_id, Step) else self.step(step_or_id)
        try:
            return zoo.get_class(s.class_name)(config or self.config(s, dims))
        except ValueError as e:
            raise StepError(f"RATIO step {s.id} in {self.path.name} is invalid: {e}") from e


@functools.cache
def get(path=STEPS_BZL):
    return Registry(path)


def step(step_id):
    return get().step(step_id)


def step_ids():
    return get().step_ids()


def config(step_obj, dims="real"):
    return get().config(step_obj, dims)


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
