"""The decode cell: which model, dtype, K and V cache and attention backend a measurement serves.

Each stage set declares its cell once in stage_sets.bzl. The run stage hands
it to every measurement program as `--cell JSON`; the programs build vLLM's
`LLM` from `llm_kwargs(cell)` and write it into every metrics record, so a
record says which cell it measured. The GSM8K quality gate compares two arms,
the cell and its 16-bit reference (`QUALITY_REFERENCE` in stage_sets.bzl);
`check_arms` refuses a pair whose cache dtypes are the same, since such a gate
compares a cache with itself and passes whatever the cell does.

Standard library only (and the project's .bzl reader): the programs import it
in the serving environment.
"""

import json
from pathlib import Path

from tools.bazel.bzl_data import load_bzl

STAGE_SETS_BZL = Path(__file__).resolve().parent / "stage_sets.bzl"

FIELDS = ("model", "dtype", "k_cache_dtype", "v_cache_dtype", "attention_backend")
DTYPES = ("bfloat16", "float16")
# vLLM's kv_cache_dtype names; "auto" stores the cache in the model's dtype.
CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
BACKENDS = ("FLASHINFER", "FLASH_ATTN", "TRITON_ATTN", "FLEX_ATTENTION")
# Backends that have the fork's asymmetric (K != V dtype) cache writer.
ASYMMETRIC_BACKENDS = ("FLASHINFER",)


class CellError(ValueError):
    """A cell or a pair of arms that cannot be measured, with what is accepted."""


def _accepted(name, value, accepted):
    if value not in accepted:
        raise CellError(f"cell {name}={value!r} is not accepted; accepted: {', '.join(accepted)}")


def check(cell):
    """`cell` if every field is present and valid, else CellError naming the bad one."""
    if not isinstance(cell, dict):
        raise CellError(f"a cell is a dict with {', '.join(FIELDS)}; got {cell!r}")
    missing = [f for f in FIELDS if f not in cell]
    extra = sorted(set(cell) - set(FIELDS))
    if missing or extra:
        raise CellError(
            f"cell {cell!r}: missing {missing or 'nothing'}, unknown {extra or 'nothing'}; "
            f"a cell has exactly {', '.join(FIELDS)}"
        )
    if not (isinstance(cell["model"], str) and cell["model"]):
        raise CellError(f"cell model={cell['model']!r}: accepted: a Hugging Face model name")
    _accepted("dtype", cell["dtype"], DTYPES)
    _accepted("k_cache_dtype", cell["k_cache_dtype"], CACHE_DTYPES)
    _accepted("v_cache_dtype", cell["v_cache_dtype"], CACHE_DTYPES)
    _accepted("attention_backend", cell["attention_backend"], BACKENDS)
    if asymmetric(cell) and cell["attention_backend"] not in ASYMMETRIC_BACKENDS:
        raise CellError(
            f"cell K {cell['k_cache_dtype']} / V {cell['v_cache_dtype']} with backend "
            f"{cell['attention_backend']}: an asymmetric cache needs one of "
            f"{', '.join(ASYMMETRIC_BACKENDS)} (the others have no asymmetric cache writer)"
        )
    return cell


def asymmetric(cell):
    return cell["k_cache_dtype"] != cell["v_cache_dtype"]


def cache_dtypes(cell):
    return (cell["k_cache_dtype"], cell["v_cache_dtype"])


def label(cell):
    """How a cell reads in a log or report: `model dtype, K auto / V fp8_e4m3, FLASHINFER`."""
    return (
        f"{cell['model']} {cell['dtype']}, K {cell['k_cache_dtype']} / "
        f"V {cell['v_cache_dtype']}, {cell['attention_backend']}"
    )


def llm_kwargs(cell):
    """vLLM `LLM(...)` keyword arguments for the cell (the group's recipe)."""
    check(cell)
    kv = cache_dtypes(cell) if asymmetric(cell) else cell["k_cache_dtype"]
    return {
        "model": cell["model"],
        "dtype": cell["dtype"],
        "kv_cache_dtype": kv,
        "attention_config": {"backend": cell["attention_backend"]},
    }


def quality_reference():
    """The cache dtypes the quality gate's reference arm stores (stage_sets.bzl)."""
    return load_bzl(STAGE_SETS_BZL)["QUALITY_REFERENCE"]


def with_cache(cell, reference):
    """The cell with the cache dtypes of `reference` (QUALITY_REFERENCE): a gate's other arm."""
    return check(dict(cell, **reference))


def check_arms(reference, test):
    """Refuses two quality-gate arms that store the cache alike; returns (reference, test)."""
    check(reference)
    check(test)
    if cache_dtypes(reference) == cache_dtypes(test):
        raise CellError(
            f"the quality gate's arms have the same cache dtypes: reference K "
            f"{reference['k_cache_dtype']} / V {reference['v_cache_dtype']}, test K "
            f"{test['k_cache_dtype']} / V {test['v_cache_dtype']}; it would compare a cache "
            "with itself. Declare a cell whose K or V dtype differs from QUALITY_REFERENCE "
            "in tools/reproduce/stage_sets.bzl"
        )
    return reference, test


def from_json(text):
    """A cell from the `--cell` argument."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CellError(f"--cell {text!r} is not JSON ({err}); accepted: a cell object") from err
    return check(value)


def to_json(cell):
    return json.dumps(check(cell), sort_keys=True)
