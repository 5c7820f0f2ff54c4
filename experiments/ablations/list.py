"""List every GPT-2 model class, variant prefix and RATIO step with its size.

    bazel run //experiments/ablations:list
    bazel run //experiments/ablations:list -- --steps-table   # README's step table

Parameters exclude the position embedding (as nanoGPT reports them). Cache
bytes per token per layer are measured from the cache tensors after a prefill
on the meta device (shapes and element sizes are real there; no values are
computed) in fp32; bf16 halves them.
"""

import argparse
import sys

import torch

from experiments.ablations import registry
from models.gpt2 import zoo
from models.gpt2.config import preset
from models.gpt2.layers import cache_bytes

PREFILL = 64


def measure(model_cls, cfg):
    with torch.device("meta"):
        model = model_cls(cfg)
        _, _, cache = model(torch.zeros(1, PREFILL, dtype=torch.long), use_cache=True)
    return model.get_num_params(), cache_bytes(cache) / (PREFILL * cfg.n_layer)


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-table", action="store_true", help="print README's step table")
    parser.add_argument("--preset", default="124m", help="size of the class listing")
    args = parser.parse_args(argv)
    if args.steps_table:
        sys.stdout.write(registry.markdown_table())
        return 0

    base = preset(args.preset)
    rows = []
    for name, cls in zoo.discover().items():
        cfg = base
        params, cache = measure(cls, cfg)
        rows.append((name, f"{params:,}", f"{cache:,.0f}", f"{2 * base.n_embd * 4 / cache:.1f}x"))
    print(f"Model classes at {args.preset} (cache: fp32 bytes per token per layer)")
    print(table(rows, ("class", "params", "cache B/tok/layer", "vs GPT2")))

    reg = registry.get()
    rows = []
    for prefix, spec in reg.variants.items():
        cls = zoo.get_class(spec["class"])
        params, cache = measure(cls, base.with_options(**spec["options"]))
        rows.append((prefix, spec["class"], f"{params:,}", f"{cache:,.0f}", spec["doc"]))
    print(f"\nVariant prefixes at {args.preset}")
    print(table(rows, ("prefix", "class", "params", "cache B/tok/layer", "what")))

    rows = []
    for i in reg.step_ids():
        s = reg.step(i)
        params, cache = measure(zoo.get_class(s.class_name), reg.config(s))
        rows.append((i, s.variant, s.class_name, f"{params:,}", f"{cache:,.0f}", s.doc))
    print("\nRATIO steps (GPT-2 124M)")
    print(table(rows, ("step", "variant", "class", "params", "cache B/tok/layer", "enables")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
