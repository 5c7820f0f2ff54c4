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
  cell: the decode cell the measurements serve (tools/reproduce/cell.py):
    model, dtype, K and V cache dtypes (vLLM's names; "auto" is the model's
    16-bit dtype) and vLLM's attention backend. Every measurement program
    builds its LLM from it and records it in every metrics record.

QUALITY_REFERENCE is the cache the GSM8K quality gate compares the cell with:
the same model, dtype and backend with 16-bit K and V.
"""

# The group's production recipe for the asymmetric cache:
#   LLM(model=..., dtype="bfloat16", kv_cache_dtype=("auto", "fp8_e4m3"),
#       attention_config={"backend": "FLASHINFER"})
# FLASHINFER is named because the forked vLLM ignores VLLM_ATTENTION_BACKEND and
# auto-selection picks FlashAttention, which has no asymmetric cache writer.
K16_V8 = {
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "dtype": "bfloat16",
    "k_cache_dtype": "auto",
    "v_cache_dtype": "fp8_e4m3",
    "attention_backend": "FLASHINFER",
}

QUALITY_REFERENCE = {
    "k_cache_dtype": "auto",
    "v_cache_dtype": "auto",
}

STAGE_SETS = {
    "decode": {
        "description": "K16/V8 correctness: FlashInfer asymmetric attention error and vLLM's cache writer",
        "pair": "paper",
        "measurements": ["flashinfer_asym", "vllm_writer"],
        "cell": K16_V8,
    },
    "decode-sat": {
        "description": "decode plus the saturation sweep (B in 1..32, T in 2K..32K) and its fit",
        "pair": "paper",
        "measurements": ["flashinfer_asym", "vllm_writer", "saturation"],
        "cell": K16_V8,
    },
    "decode-full": {
        "description": "decode-sat plus Qwen2.5-7B GSM8K (n=200) against FP16",
        "pair": "paper",
        "measurements": ["flashinfer_asym", "vllm_writer", "saturation", "gsm8k"],
        "cell": K16_V8,
    },
}
