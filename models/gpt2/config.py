"""GPT2Config: the one configuration dataclass every GPT-2 class takes first.

Fields are grouped by the mechanism that reads them. A class declares the
mechanisms it implements in `FEATURES`; building a class with a field of a
mechanism it lacks set away from its default is an error, so an option can
never be silently dropped on its way to the model (the old tree's bug).
"""

from dataclasses import dataclass, fields, replace

MULTIPLE = 64  # every width RATIO produces is a multiple of this


def round_to_multiple(x, multiple=MULTIPLE):
    """The nearest positive multiple of `multiple` to `x`."""
    return max(multiple, int(round(x / multiple)) * multiple)


@dataclass(frozen=True)
class GPT2Config:
    # trunk
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    # MLP: hidden width = mlp_ratio * n_embd rounded to a multiple of 64 (RATIO)
    mlp_ratio: float = 4.0
    mlp_attn_gate: bool = False  # hidden units gated by the block's attention output
    mlp_cross_token: bool = False  # hidden units see a causal mean of earlier tokens
    # Reciprocal attention (feature "ra")
    ra_learned: bool = False  # per-layer learned choice; else a fixed mix
    ra_alpha: float = 0.3  # weight of softmax(K Q^T) V in the fixed mix
    ra_band: int = 64  # reciprocal scores only within this many tokens
    # RA-CT: per-head gate from attention-row statistics
    ract: bool = False
    ract_stat: str = "topk"  # topk | max | entropy | rms
    ract_k: int = 8
    ract_alpha: float = 0.2
    ract_apply: str = "output"  # output | weights
    # Multi-head latent attention (feature "mla")
    d_latent: int = 256
    rope_theta: float = 10000.0
    # KVSplice (feature "kvsplice")
    kv_ratio: float = 0.5
    # MLPSplice (feature "mlpsplice")
    mlp_splice_tied: bool = True

    def __post_init__(self):
        def bad(name, value, accepted):
            raise ValueError(f"GPT2Config.{name}={value!r} is invalid; accepted: {accepted}")

        if self.n_embd % self.n_head:
            bad("n_embd", self.n_embd, f"a multiple of n_head={self.n_head}")
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "d_latent"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                bad(name, getattr(self, name), "a positive int")
        if not (isinstance(self.mlp_ratio, int | float) and self.mlp_ratio > 0):
            bad("mlp_ratio", self.mlp_ratio, "a positive number")
        if self.ract_stat not in RACT_STATS:
            bad("ract_stat", self.ract_stat, ", ".join(RACT_STATS))
        if self.ract_apply not in RACT_APPLY:
            bad("ract_apply", self.ract_apply, ", ".join(RACT_APPLY))
        if not 0.0 < self.kv_ratio <= 1.0:
            bad("kv_ratio", self.kv_ratio, "a number in (0, 1]")
        if not 0.0 <= self.ra_alpha <= 1.0:
            bad("ra_alpha", self.ra_alpha, "a number in [0, 1]")

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    @property
    def mlp_dim(self):
        return round_to_multiple(self.mlp_ratio * self.n_embd)

    @property
    def d_compressed(self):
        return max(1, int(round(self.d_latent * self.kv_ratio)))

    def with_options(self, **options):
        """A copy with `options` set; an unknown field names the accepted ones."""
        known = {f.name for f in fields(self)}
        for key in options:
            if key not in known:
                raise ValueError(
                    f"GPT2Config has no option {key!r}; accepted: {', '.join(sorted(known))}"
                )
        return replace(self, **options)


RACT_STATS = ("topk", "max", "entropy", "rms")
RACT_APPLY = ("output", "weights")

# Which fields belong to which optional mechanism (see FEATURES on each class).
FEATURE_FIELDS = {
    "ra": ("ra_learned", "ra_alpha", "ra_band"),
    "mla": ("d_latent", "rope_theta"),
    "kvsplice": ("kv_ratio",),
    "mlpsplice": ("mlp_splice_tied",),
}

PRESETS = {
    "tiny": dict(n_layer=6, n_head=8, n_embd=512),
    "124m": dict(n_layer=12, n_head=12, n_embd=768),
    "medium": dict(n_layer=24, n_head=16, n_embd=1024),
    "large": dict(n_layer=36, n_head=20, n_embd=1280),
    "xl": dict(n_layer=48, n_head=25, n_embd=1600),
}


def preset(name, **options):
    """The GPT2Config of a named preset, with `options` applied on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; accepted: {', '.join(PRESETS)}")
    return GPT2Config(**PRESETS[name]).with_options(**options)


def check_features(cls_name, features, config):
    """Refuses a config that sets a field of a mechanism the class does not implement."""
    default = GPT2Config()
    for feature, names in FEATURE_FIELDS.items():
        if feature in features:
            continue
        for name in names:
            if getattr(config, name) != getattr(default, name):
                owners = f"a class with feature {feature!r}"
                raise ValueError(
                    f"{cls_name} does not implement {feature!r}, so {name}="
                    f"{getattr(config, name)!r} would be ignored; use {owners}"
                )
