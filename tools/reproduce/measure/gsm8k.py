"""Qwen2.5-7B on GSM8K (n=200) with the K16/V8 cache against FP16.

Runs lm-evaluation-harness (`lm_eval`, installed in the serving environment)
twice through its vLLM backend on the first 200 GSM8K test problems: once with
kv_cache_dtype "auto" (16-bit K and V) and once with KNLP_KV_CACHE_DTYPE, and
records both exact-match accuracies and their difference in points (the gate:
within 1.5).
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.reproduce.measure import common

LIMIT = 200


def accuracy(model, kv_dtype, seed, work):
    out = Path(work) / kv_dtype.replace("/", "_")
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "vllm",
        "--model_args",
        f"pretrained={model},kv_cache_dtype={kv_dtype},seed={seed}",
        "--tasks",
        "gsm8k",
        "--limit",
        str(LIMIT),
        "--output_path",
        str(out),
    ]
    subprocess.run(cmd, check=True)
    (result,) = out.rglob("results*.json")
    metrics = json.loads(result.read_text())["results"]["gsm8k"]
    return float(metrics["exact_match,strict-match"]) * 100.0


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    if importlib.util.find_spec("lm_eval") is None:
        raise SystemExit(
            f"lm_eval (lm-evaluation-harness) is not installed in {sys.executable}'s environment; "
            "the gsm8k measurement needs it (it is not in the pinned CUDA lock yet)"
        )
    model = os.environ.get("KNLP_DECODE_MODEL", "Qwen/Qwen2.5-7B-Instruct")
    kv_dtype = os.environ.get("KNLP_KV_CACHE_DTYPE", "auto")
    with tempfile.TemporaryDirectory() as work:
        fp16 = accuracy(model, "auto", args.seed, work)
        asym = accuracy(model, kv_dtype, args.seed, work)
    common.write_records(
        args.out,
        [
            {"metric": "gsm8k_fp16_accuracy", "value": fp16, "n": LIMIT},
            {
                "metric": "gsm8k_asym_accuracy",
                "value": asym,
                "n": LIMIT,
                "kv_cache_dtype": kv_dtype,
            },
            {"metric": "gsm8k_delta_points", "value": abs(asym - fp16)},
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
