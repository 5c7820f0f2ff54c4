"""AdamWPrune: pruning scored from an Adam-family optimizer's own state.

Wraps adam, adamw, adamwadv or adamwspam. Around each step the masks (see
masks.py) are applied to gradients and weights; every `frequency` steps after
`warmup` the weights are scored with a bitter variant (scores.py) from the
weight w, exp_avg m and exp_avg_sq v, and the top (1 - s) are kept, s ramping
cubically to `target` at `ramp_end`. bitter4 keeps a per-layer share instead.
"""

import torch

from pruning.masks import Pruned, Pruner
from pruning.scores import LAYER_ADAPTIVE, get_score
from pruning.spam import AdamWSPAM


class StatePruner(Pruner):
    shape = "cubic"

    def __init__(self, optimizer, model, variant="bitter7", **kwargs):
        self.variant, self.fn = variant, get_score(variant)
        kwargs.setdefault("layer_adaptive", variant in LAYER_ADAPTIVE)
        super().__init__(model, **kwargs)
        self.optimizer = optimizer

    def score(self, i, w):
        state = self.optimizer.state.get(w, {})
        m = state.get("exp_avg", torch.zeros_like(w))
        v = state.get("exp_avg_sq", torch.zeros_like(w))
        step = int(state.get("step", 1)) or 1
        beta1 = self.optimizer.param_groups[0].get("betas", (0.9, 0.999))[0]
        return self.fn(w, m, v, step=step, beta1=beta1)


class AdamWPrune(Pruned):
    """`AdamWPrune(base, model, variant="bitter7", target=0.5, warmup=1000, ramp_end=3000)`."""

    def __init__(self, base, model, variant="bitter7", **kwargs):
        if not isinstance(base, torch.optim.Adam | torch.optim.AdamW | AdamWSPAM):
            raise ValueError(
                f"AdamWPrune wraps an Adam-family optimizer (adam, adamw, adamwadv, adamwspam), "
                f"got {type(base).__name__}"
            )
        super().__init__(base, StatePruner(base, model, variant=variant, **kwargs))
