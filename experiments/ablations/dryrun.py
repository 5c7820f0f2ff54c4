"""The dry-run: what every model class, ablation step and pruning variant must survive.

numeric_pass: at tiny dimensions on the CPU, build, forward, loss, backward,
optimizer step and prune step for a few iterations on one fixed batch; every
loss, gradient and weight finite, the loss lower at the end than at the start,
and with pruning the target sparsity reached and pruned weights zero.

meta_pass: at the real dimensions on PyTorch's meta device, where tensors have
shapes but no values, so a 124M forward, backward and optimizer step cost
about a second: every shape must agree, every parameter get a gradient of its
own shape, the optimizer and the pruner run, and a cached decode step works.
"""

import torch

from models.gpt2.config import GPT2Config
from pruning.optimizers import GRAD_CLIP, make_optimizer, optimizer_step

# The dry-run's tensors are tiny: one thread is faster than two fighting over a
# shared 2-core machine, and Bazel already runs tests side by side.
torch.set_num_threads(1)


class DryRunError(AssertionError):
    pass


def _check_finite(what, tensors):
    for name, t in tensors:
        if t is not None and not torch.isfinite(t).all():
            raise DryRunError(f"{what}: {name} has NaN or Inf")


def make_step_optimizer(model, optimizer, pruning, lr):
    """The optimizer, wrapped in AdamWPrune when the step prunes.

    `pruning` is None, AdamWPrune's options, or with "method": "magnitude" or
    "movement" the options of those pruners around any optimizer.
    """
    if pruning and not pruning.get("method"):
        return make_optimizer("adamwprune", model, lr=lr, base=optimizer, pruning=dict(pruning))
    return make_optimizer(optimizer, model, lr=lr, pruning=pruning)


def tiny_pruning(pruning, iters):
    """A step's pruning with its ramp squeezed into the dry-run's iterations."""
    if not pruning:
        return None
    return dict(pruning, warmup=1, ramp_end=max(2, iters // 2), frequency=1)


def numeric_pass(model, optimizer="adamwspam", pruning=None, iters=8, batch=4, seq=32, lr=3e-3):
    """Trains `model` on one fixed batch for `iters` steps; returns the losses."""
    cfg: GPT2Config = model.config
    torch.manual_seed(0)
    seq = min(seq, cfg.block_size)
    x = torch.randint(0, cfg.vocab_size, (batch, seq + 1))
    inputs, targets = x[:, :-1], x[:, 1:]

    def loss_fn():
        logits, loss = model(inputs, targets)
        if logits.shape != (batch, seq, cfg.vocab_size):
            raise DryRunError(f"logits shape {tuple(logits.shape)}")
        return loss

    return train_fixed_batch(model, loss_fn, optimizer, pruning, iters, lr)


def train_fixed_batch(model, loss_fn, optimizer, pruning, iters, lr):
    """`iters` optimizer steps on `loss_fn()`: finite everywhere, the loss falls,
    and a pruned step reaches its sparsity. Returns the losses."""
    opt = make_step_optimizer(model, optimizer, tiny_pruning(pruning, iters), lr)
    model.train()
    losses = []
    for _ in range(iters):
        loss = loss_fn()
        _check_finite("forward", [("loss", loss)])
        loss.backward()
        _check_finite("backward", [(n, p.grad) for n, p in model.named_parameters()])
        optimizer_step(opt, model.parameters(), GRAD_CLIP.get(optimizer, 0.0))
        opt.zero_grad(set_to_none=True)
        _check_finite("optimizer step", list(model.named_parameters()))
        losses.append(loss.item())
    if not losses[-1] < losses[0]:
        raise DryRunError(
            f"loss did not fall on a fixed batch: {losses[0]:.4f} -> {losses[-1]:.4f}"
        )
    if pruning:
        check_pruned(opt, pruning["target"])
    return losses


def check_pruned(opt, target):
    """Sparsity within 1% of target (per layer when layer-adaptive); pruned weights zero."""
    pruner = opt.pruner
    if pruner.layer_adaptive:
        from pruning.schedule import layer_sparsities

        for name, got, want in zip(
            pruner.names,
            pruner.layer_sparsity(),
            layer_sparsities(target, len(pruner.weights)),
            strict=True,
        ):
            if abs(got - want) > 0.01:
                raise DryRunError(f"{name}: sparsity {got:.4f} after the ramp, target {want:.4f}")
    elif abs(opt.sparsity() - target) > 0.01:
        raise DryRunError(f"sparsity {opt.sparsity():.4f} after the ramp, target {target}")
    for w, mask in zip(pruner.weights, pruner.masks, strict=True):
        if (w[~mask] != 0).any():
            raise DryRunError("a pruned weight is not zero")


def numeric_pass_vision(model, input_shape, optimizer="adamw", pruning=None, iters=8, lr=3e-3):
    """numeric_pass for an image classifier: a fixed batch of 8 random images."""
    torch.manual_seed(0)
    x = torch.randn(8, *input_shape)
    y = torch.randint(0, 10, (8,))
    return train_fixed_batch(
        model,
        lambda: torch.nn.functional.cross_entropy(model(x), y),
        optimizer,
        pruning,
        iters,
        lr,
    )


def meta_pass(model_cls, cfg, optimizer="adamwspam", pruning=None, batch=8):
    """Forward, backward, optimizer, prune and decode steps at full size on the meta device."""
    with torch.device("meta"):
        model = model_cls(cfg)
        T = cfg.block_size - 1  # the training forward fills the cache; one decode step follows
        idx = torch.randint(0, cfg.vocab_size, (batch, T))
        logits, loss, cache = model(idx, idx, use_cache=True)
        if logits.shape != (batch, T, cfg.vocab_size) or loss.shape != ():
            raise DryRunError(f"logits {tuple(logits.shape)}, loss {tuple(loss.shape)}")
        loss.backward()
        for name, p in model.named_parameters():
            if p.grad is None or p.grad.shape != p.shape:
                raise DryRunError(f"parameter {name} {tuple(p.shape)} got no gradient of its shape")
        opt = make_step_optimizer(model, optimizer, pruning, lr=6e-4)
        optimizer_step(opt, model.parameters(), GRAD_CLIP.get(optimizer, 0.0))
        if pruning:
            opt.pruner.update_masks(pruning["target"])
            opt.pruner.after_step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            step_logits, _, cache = model(idx[:, :1], cache=cache, use_cache=True)
        if step_logits.shape != (batch, 1, cfg.vocab_size) or cache["pos"] != T + 1:
            raise DryRunError(f"decode step gave {tuple(step_logits.shape)} at {cache['pos']}")
    return {"params": model.get_num_params()}


def dry_run_step(reg, step_id):
    """The whole dry-run of one ablation step: numeric at tiny dims, meta at real dims."""
    from models.gpt2 import zoo

    s = reg.step(step_id)
    torch.manual_seed(0)
    model = reg.build_model(s, dims="tiny")
    losses = numeric_pass(model, s.optimizer, s.pruning)
    meta = meta_pass(zoo.get_class(s.class_name), reg.config(s), s.optimizer, s.pruning)
    return {"step": s.id, "losses": losses, **meta}
