"""AdamWSPAM: AdamW with AMSGrad (adamwadv) and, with spam=True, SPAM's spike handling.

The optimizer only updates weights and moments. `optimizer_step`
(optimizers.py) makes the global gradient-norm clip and the trainer
(experiments/trainer.py) sets the learning rate; what SPAM needs from them
is two hooks:

  * `before_clip()`, called by `optimizer_step` on the raw gradients, after the
    backward pass and before the global clip. It does the reference's
    spike handling (the old tree's `apply_spam_gradient_processing`):
      - spike clipping (only with spike_clip=True, off by default as in the
        reference, where it is --spam-enable-clip): each entry with |g| > thr,
        thr = sqrt(theta (v + 1e-12)), v the second moment before this step,
        is set to sign(g) thr (theta 50);
      - spike test: the total gradient norm (after spike clipping) joins a
        window of the last `window` (100) finite norms; once it holds
        `min_norms` (10), the z-score of this norm against the others
        (population std, numpy's default) above `zscore` (2) is a spike, and
        exp_avg is multiplied by 0.5 and exp_avg_sq by 0.9 before the
        update; AMSGrad's max_exp_avg_sq is left alone.
    If the trainer does not call it, `step()` does, so the optimizer on its
    own still handles spikes (with no global clip).
  * `lr_restarts`: (reset_interval, reset_warmup). Every reset_interval
    steps exp_avg and exp_avg_sq are zeroed before the update (AMSGrad's
    max_exp_avg_sq too only with reset_amsgrad_max=True); the learning-rate warmup
    after each reset is the trainer's schedule's (pruning/schedule.py
    `restart_factor`), not applied here.
"""

import collections
import math

import torch

SPIKE_EPS = 1e-12  # the reference's epsilon under the spike-clip threshold


class AdamWSPAM(torch.optim.Optimizer):
    """AdamW + AMSGrad (adamwadv); with spam=True, SPAM too (see the module docstring)."""

    def __init__(
        self,
        params,
        lr=6e-4,
        betas=(0.9, 0.95),
        eps=1e-8,
        weight_decay=0.1,
        amsgrad=True,
        spam=True,
        spike_clip=False,
        theta=50.0,
        zscore=2.0,
        window=100,
        min_norms=10,
        spike_decay=(0.5, 0.9),
        reset_interval=1000,
        reset_warmup=150,
        reset_amsgrad_max=False,
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)
        self.spam, self.spike_clip, self.theta, self.zscore = spam, spike_clip, theta, zscore
        self.min_norms, self.spike_decay = min_norms, spike_decay
        self.reset_interval, self.reset_warmup = reset_interval, reset_warmup
        self.reset_amsgrad_max = reset_amsgrad_max
        self.t = 0
        self.norms = collections.deque(maxlen=window)
        self.spikes = 0
        self._processed = False  # before_clip() ran for the pending gradients

    @property
    def lr_restarts(self):
        """(interval, warmup) of the periodic moment resets, or None without them."""
        if self.spam and self.reset_interval:
            return (self.reset_interval, self.reset_warmup)
        return None

    def _params(self):
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    @torch.no_grad()
    def before_clip(self):
        """SPAM's spike clipping and spike test on the raw gradients (before the global clip)."""
        self._processed = True
        params = self._params()
        if not self.spam or not params:
            return
        if self.spike_clip:
            for p in params:
                v = self.state[p].get("exp_avg_sq")
                if v is None:
                    continue
                thr = (self.theta * (v + SPIKE_EPS)).sqrt()
                p.grad.copy_(torch.where(p.grad.abs() > thr, p.grad.sign() * thr, p.grad))
        if any(p.grad.is_meta for p in params):  # shapes without values: no norm to test
            return
        # One device sync for the total norm: per-parameter norms summed in float64.
        norms = torch.stack([p.grad.norm(2).double() for p in params])
        norm = float(norms.square().sum().sqrt())
        if self._is_spike(norm):
            m_factor, v_factor = self.spike_decay
            for p in params:
                state = self.state[p]
                if "exp_avg" in state:
                    state["exp_avg"].mul_(m_factor)
                    state["exp_avg_sq"].mul_(v_factor)
            self.spikes += 1

    def _is_spike(self, norm):
        """Whether `norm`'s z-score against the earlier norms in the window exceeds zscore."""
        if math.isfinite(norm):
            self.norms.append(norm)
        if len(self.norms) < self.min_norms:
            return False
        history = [x for x in list(self.norms)[:-1] if math.isfinite(x)]
        if not history:
            return False
        mean = sum(history) / len(history)
        std = math.sqrt(sum((x - mean) ** 2 for x in history) / len(history))
        return std > 0 and (norm - mean) / std > self.zscore

    def _zero_moments(self):
        for state in self.state.values():
            keys = ("exp_avg", "exp_avg_sq") + (
                ("max_exp_avg_sq",) if self.reset_amsgrad_max else ()
            )
            for key in keys:
                if key in state:
                    state[key].zero_()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self._processed:
            self.before_clip()
        self._processed = False
        self.t += 1
        restarts = self.lr_restarts
        if restarts and self.t > 1 and (self.t - 1) % restarts[0] == 0:
            self._zero_moments()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
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
        return loss

    def state_dict(self):
        sd = super().state_dict()
        sd["spam"] = {"t": self.t, "norms": list(self.norms), "spikes": self.spikes}
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        extra = state_dict.pop("spam", None)
        super().load_state_dict(state_dict)
        if extra:
            self.t, self.spikes = extra["t"], extra["spikes"]
            self.norms.clear()
            self.norms.extend(extra["norms"])
