"""The optimizers: sgd, adam, adamw, adamwadv, adamwspam, and adamwprune on top.

adamwadv is AdamW with AMSGrad, global gradient clipping (1.0) and, given
`total_steps`, cosine annealing of the learning rate down to 1e-6.
adamwspam adds SPAM's spike handling to adamwadv:

  * spike clipping: each gradient entry is clipped to |g| <= sqrt(theta v),
    v the second moment before this step (theta = 50);
  * soft reset: when the gradient norm's z-score against its running mean and
    deviation exceeds 2, both moments are scaled by 0.5;
  * periodic reset: every 1000 steps the moments are zeroed and the learning
    rate rises again over a short cosine warmup (150 steps).

`make_optimizer` builds any of them from a model; adamwprune (see adamwprune.py)
wraps adam, adamw, adamwadv or adamwspam.
"""

import math

import torch

ADAM_FAMILY = ("adam", "adamw", "adamwadv", "adamwspam")
OPTIMIZERS = ("sgd", *ADAM_FAMILY, "adamwprune")


class AdamWSPAM(torch.optim.Optimizer):
    """AdamW + AMSGrad + clipping + cosine (adamwadv); with spam=True, SPAM too."""

    def __init__(
        self,
        params,
        lr=6e-4,
        betas=(0.9, 0.95),
        eps=1e-8,
        weight_decay=0.1,
        amsgrad=True,
        clip_norm=1.0,
        total_steps=None,
        min_lr=1e-6,
        spam=True,
        theta=50.0,
        zscore=2.0,
        soft_reset=0.5,
        reset_interval=1000,
        reset_warmup=150,
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)
        self.clip_norm, self.total_steps, self.min_lr = clip_norm, total_steps, min_lr
        self.spam, self.theta, self.zscore, self.soft_reset = spam, theta, zscore, soft_reset
        self.reset_interval, self.reset_warmup = reset_interval, reset_warmup
        self.t = 0
        self.since_reset = None  # steps since the last periodic reset (None: never reset)
        self.norm_stats = [0, 0.0, 0.0]  # Welford count, mean, M2 of the gradient norm

    def _params(self):
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    def lr_scale(self):
        """Multiplier on each group's lr: cosine annealing, and SPAM's warmup after a reset."""
        scale = 1.0
        if self.total_steps:
            p = min(1.0, self.t / self.total_steps)
            scale = 0.5 * (1 + math.cos(math.pi * p))
        if self.since_reset is not None and self.since_reset < self.reset_warmup:
            scale *= 0.5 * (1 - math.cos(math.pi * (self.since_reset + 1) / self.reset_warmup))
        return scale

    def _scale_moments(self, factor):
        for state in self.state.values():
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                if key in state:
                    state[key].mul_(factor)

    def _spike_statistics(self, norm):
        """Soft reset when the gradient norm is an outlier (z-score > self.zscore)."""
        if norm.is_meta:  # a meta tensor has a shape but no value
            return
        x = float(norm)
        n, mean, m2 = self.norm_stats
        if n >= 10 and m2 > 0 and (x - mean) / math.sqrt(m2 / (n - 1)) > self.zscore:
            self._scale_moments(self.soft_reset)
        n += 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
        self.norm_stats = [n, mean, m2]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        if not params:
            return loss
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        if self.clip_norm:
            coef = torch.clamp(self.clip_norm / (norm + 1e-6), max=1.0)
            for p in params:
                p.grad.mul_(coef)
        self.t += 1
        if self.spam:
            if self.t > 1 and (self.t - 1) % self.reset_interval == 0:
                self._scale_moments(0.0)
                self.since_reset = 0
            self._spike_statistics(norm)
        scale = self.lr_scale()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = self.min_lr + (group["lr"] - self.min_lr) * scale if self.total_steps else None
            lr = group["lr"] * scale if lr is None else lr
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                if self.spam and state["step"] > 0:
                    bound = (self.theta * v).sqrt()
                    g = torch.where(v > 0, torch.clamp(g, -bound, bound), g)
                state["step"] += 1
                p.mul_(1 - lr * group["weight_decay"])
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if group["amsgrad"]:
                    torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    v_hat = state["max_exp_avg_sq"]
                else:
                    v_hat = v
                bc1 = 1 - beta1 ** state["step"]
                bc2 = 1 - beta2 ** state["step"]
                p.addcdiv_(m, (v_hat / bc2).sqrt() + group["eps"], value=-lr / bc1)
        if self.since_reset is not None:
            self.since_reset += 1
        return loss

    def state_dict(self):
        sd = super().state_dict()
        sd["spam"] = {"t": self.t, "since_reset": self.since_reset, "norm": self.norm_stats}
        return sd

    def load_state_dict(self, state_dict):
        extra = state_dict.pop("spam", None)
        super().load_state_dict(state_dict)
        if extra:
            self.t, self.since_reset, self.norm_stats = (
                extra["t"],
                extra["since_reset"],
                list(extra["norm"]),
            )


def param_groups(model, weight_decay):
    """nanoGPT's split: matrices decay, biases and norms do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def make_optimizer(
    name,
    model,
    lr=6e-4,
    weight_decay=0.1,
    betas=(0.9, 0.95),
    total_steps=None,
    base="adamwspam",
    pruning=None,
):
    """Builds optimizer `name` for `model`.

    For adamwprune, `base` is the Adam-family optimizer it wraps and `pruning` a
    dict of AdamWPrune's options (variant, target, warmup, ramp_end, frequency).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; accepted: {', '.join(OPTIMIZERS)}")
    if name == "adamwprune":
        from pruning.adamwprune import AdamWPrune

        if base not in ADAM_FAMILY:
            raise ValueError(
                f"adamwprune cannot wrap {base!r}; accepted bases: {', '.join(ADAM_FAMILY)}"
            )
        inner = make_optimizer(base, model, lr, weight_decay, betas, total_steps)
        return AdamWPrune(inner, model, **(pruning or {}))
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    return AdamWSPAM(groups, lr=lr, betas=betas, total_steps=total_steps, spam=name == "adamwspam")
