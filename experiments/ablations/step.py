"""One GPT-2 ablation step: its declaration as a `Step`, its config and its model.

A step's declaration has three parts, each from experiments/ablations/steps.bzl:
the step's own entry (variant, options, optimizer, pruning, doc), its
variant's entry (the model class and the options the prefix implies), and the
base every step shares (RATIO_BASE: the preset and common options).
`Step.from_parts` merges them (base, then variant, then step options) and
checks the fields; nothing else reads a declaration. A run's action receives
exactly these parts (experiments/experiment.bzl), so a step retrains when its
own declaration, its variant's or the base changes, and for no other step's.
The registry (registry.py) reads steps.bzl and builds every Step the same way.

    s = Step.from_parts(8, {"variant": "MLA", ...}, {"class": "GPT2_MLA", ...}, base)
    cfg = config(s, "tiny")          # or "real", or a profile's trunk
    model = build_model(s, cfg)      # GPT2_MLA(cfg), found by convention
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.gpt2.config import preset, round_to_multiple

# The numeric dry-run's dimensions: small enough for a CPU, big enough that
# every mechanism is exercised (bands, top-k, latents scale with them).
TINY = {"n_layer": 2, "n_head": 2, "n_embd": 128, "block_size": 64, "vocab_size": 256}
STEP_KEYS = ("variant", "options", "optimizer", "pruning", "doc")
# AdamWPrune's options; with "method" (magnitude, movement) a mask pruner's.
PRUNING_KEYS = ("variant", "method", "target", "warmup", "ramp_end", "frequency")
DEFAULT_OPTIMIZER = "adamwspam"


class StepError(ValueError):
    """A step that is unknown or declared with options that cannot build."""


@dataclass(frozen=True)
class Step:
    id: int  # the RATIO step id; -1 for a step that is not a RATIO step (a variant)
    variant: str
    class_name: str
    preset: str  # the GPT-2 preset the step's options go on (models/gpt2/config.py)
    options: dict = field(hash=False)  # GPT2Config options: base, then variant, then step
    optimizer: str = DEFAULT_OPTIMIZER
    pruning: dict | None = field(default=None, hash=False)
    doc: str = ""

    @property
    def name(self) -> str:
        return f"step {self.id} ({self.variant}: {self.doc})"

    @classmethod
    def from_parts(cls, step_id: int, spec: dict, variant: dict, base: dict, where=None) -> Step:
        """The Step of a declaration's three parts; a bad one raises StepError naming the
        step (`where`, default "step <id> (<variant>)")."""
        where = where or f"step {step_id} ({spec.get('variant')})"
        try:
            unknown = set(spec) - set(STEP_KEYS)
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}; accepted: {STEP_KEYS}")
            pruning = spec.get("pruning")
            if pruning is not None:
                bad = set(pruning) - set(PRUNING_KEYS)
                if bad:
                    raise ValueError(
                        f"unknown pruning keys {sorted(bad)}; accepted: {PRUNING_KEYS}"
                    )
            step = cls(
                id=int(step_id),
                variant=spec["variant"],
                class_name=variant["class"],
                preset=base["preset"],
                options={**base["options"], **variant["options"], **spec.get("options", {})},
                optimizer=spec.get("optimizer") or DEFAULT_OPTIMIZER,
                pruning=pruning,
                doc=spec.get("doc", ""),
            )
            config(step)  # option names and values
        except (ValueError, TypeError, KeyError) as e:
            raise StepError(f"{where} is invalid: {e}") from e
        return step


def config(step: Step, dims="real"):
    """The GPT2Config a step trains at ("real"), dry-runs at ("tiny"), or at a given trunk.

    A trunk is a dict of the five TINY keys (a run profile's size,
    experiments/gpt2_step.py); the step's mechanism sizes (latent, RA band)
    scale with it as they do for "tiny", and dropout is off.
    """
    cfg = preset(step.preset, **step.options)
    if dims == "real":
        return cfg
    trunk = TINY if dims == "tiny" else dims
    if not isinstance(trunk, dict) or set(trunk) != set(TINY):
        raise ValueError(f"unknown dims {dims!r}; accepted: real, tiny, a dict of {sorted(TINY)}")
    scale = trunk["n_embd"] / cfg.n_embd
    small = dict(trunk, dropout=0.0)
    if "d_latent" in step.options:
        small["d_latent"] = round_to_multiple(cfg.d_latent * scale, 32)
    if "ra_band" in step.options:
        small["ra_band"] = max(8, cfg.ra_band * trunk["block_size"] // cfg.block_size)
    return cfg.with_options(**small)


def build_model(step: Step, cfg=None):
    """The model a step builds (on the current default device), at `cfg` or its real size.

    The class is found by the naming convention (models/gpt2/zoo.py), so a
    target that depends on one class file can build that class alone.
    """
    from models.gpt2 import zoo

    try:
        return zoo.get_class(step.class_name)(cfg or config(step))
    except ValueError as e:
        raise StepError(f"step {step.id} ({step.variant}) is invalid: {e}") from e
