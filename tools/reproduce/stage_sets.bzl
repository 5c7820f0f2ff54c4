"""The decode reproduction stage sets: each declared once.

Plain data (a Starlark dict that is also a Python literal): the BUILD file
makes one `bazel run //tools/reproduce:<stage_set>` target per entry, and
tools/reproduce/pipeline.py reads the same dict for what each stage set fetches,
builds and measures.

Fields:
  description: one line for `--help` and the report.
  pair: which pin set of //third_party/forks the stage set serves
    ("paper": vLLM + FlashInfer at paper-memory-decode-v0.18, with LMCache).
  measurements: what the run stage measures, in order; each is a program in
    tools/reproduce/measure/ and feeds the gates in gates.py.
"""

STAGE_SETS = {
    "decode": {
        "description": "K16/V8 correctness: FlashInfer asymmetric attention error and vLLM's cache writer",
        "pair": "paper",
        "measurements": ["flashinfer_asym", "vllm_writer"],
    },
    "decode-sat": {
        "description": "decode plus the saturation sweep (B in 1..32, T in 2K..32K) and its fit",
        "pair": "paper",
        "measurements": ["flashinfer_asym", "vllm_writer", "saturation"],
    },
    "decode-full": {
        "description": "decode-sat plus Qwen2.5-7B GSM8K (n=200) against FP16",
        "pair": "paper",
        "measurements": ["flashinfer_asym", "vllm_writer", "saturation", "gsm8k"],
    },
}
