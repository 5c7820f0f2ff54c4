"""The decode paper's gates: each threshold declared once, from the research notes.

A gate reads one metric from the run stage's metrics.jsonl and compares it
with its threshold. A gate whose measurement is not in the stage set is not
applicable; one whose measurement is in the stage set but has no data (a skipped
run stage) is not evaluated, with the reason. Nothing passes by default.

A quality gate (`arms=True`) compares two arms; its record must name them
(`"arms": {"reference": cell, "test": cell}`) and their cache dtypes must
differ, or the gate fails (tools/reproduce/cell.py `check_arms`).
"""

import operator
from dataclasses import dataclass

OPS = {"<": operator.lt, "<=": operator.le, "==": operator.eq, ">": operator.gt}


@dataclass(frozen=True)
class Gate:
    name: str
    measurement: str
    metric: str
    op: str
    threshold: float
    meaning: str
    arms: bool = False


GATES = (
    Gate(
        "flashinfer_decode",
        "flashinfer_asym",
        "flashinfer_decode_rel_err",
        "<",
        0.10,
        "FlashInfer K16/V8 decode attention vs an FP32 reference, relative error",
    ),
    Gate(
        "flashinfer_prefill",
        "flashinfer_asym",
        "flashinfer_prefill_rel_err",
        "<",
        0.10,
        "FlashInfer K16/V8 prefill attention vs an FP32 reference, relative error",
    ),
    Gate(
        "vllm_writer_k",
        "vllm_writer",
        "vllm_writer_k_mismatched_bits",
        "==",
        0,
        "vLLM cache writer: K stored bit-exact (count of differing elements)",
    ),
    Gate(
        "vllm_writer_v",
        "vllm_writer",
        "vllm_writer_v_rel_err",
        "<",
        0.075,
        "vLLM cache writer: V stored in FP8, relative error",
    ),
    Gate(
        "gsm8k",
        "gsm8k",
        "gsm8k_delta_points",
        "<=",
        1.5,
        "GSM8K (n=200): |cell - 16-bit reference| accuracy, points",
        arms=True,
    ),
    Gate(
        "saturation_fit",
        "saturation",
        "saturation_min_r2",
        ">",
        0.85,
        "S(B) = S_max B / (K_m + B) fitted per context T: lowest R^2",
    ),
)


def evaluate(gate, value):
    return bool(OPS[gate.op](value, gate.threshold))
