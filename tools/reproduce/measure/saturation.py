"""The saturation sweep: decode throughput over batch size B and context length T.

For each context T and batch B the program serves B random-token prompts of
length T through the forked vLLM, built from the stage set's decode cell
(--cell: model, dtype, K and V cache dtypes, attention backend), and times
two generations: one token (prefill) and 1 + N tokens. Decode throughput is
S = B * N / (t_(1+N) - t_1) tokens/s, so prefill does not enter it. The report
fits S(B) = S_max B / (K_m + B) per T (tools/reproduce/saturation.py).

The model comes from the Hugging Face cache (HF_TOKEN from the environment if
the hub needs it).
"""

import sys
import time

from tools.reproduce import cell as cell_lib
from tools.reproduce.measure import common

BATCHES = (1, 2, 4, 8, 16, 32)
CONTEXTS = (2048, 4096, 8192, 16384, 32768)
DECODE_TOKENS = 128


def timed_generate(llm, prompts, max_tokens):
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True, temperature=0.0)
    start = time.perf_counter()
    llm.generate(prompts, params, use_tqdm=False)
    return time.perf_counter() - start


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    import random

    from vllm import LLM

    print(f"cell: {cell_lib.label(args.cell)}", flush=True)
    llm = LLM(
        **cell_lib.llm_kwargs(args.cell),
        max_model_len=max(CONTEXTS) + DECODE_TOKENS + 16,
        enable_prefix_caching=False,
        seed=args.seed,
    )
    vocab = llm.get_tokenizer().vocab_size
    rng = random.Random(args.seed)
    records = []
    for context in CONTEXTS:
        for batch in BATCHES:
            prompts = [
                {"prompt_token_ids": [rng.randrange(100, vocab - 100) for _ in range(context)]}
                for _ in range(batch)
            ]
            timed_generate(llm, prompts[:1], 1)  # warm the shapes
            t1 = timed_generate(llm, prompts, 1)
            tn = timed_generate(llm, prompts, 1 + DECODE_TOKENS)
            records.append(
                {
                    "metric": "decode_tokens_per_s",
                    "batch": batch,
                    "context": context,
                    "value": batch * DECODE_TOKENS / (tn - t1),
                }
            )
            print(records[-1], flush=True)
    common.write_records(args.out, records, args.cell)
    return 0


if __name__ == "__main__":
    sys.exit(main())
