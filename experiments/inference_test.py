"""Inference per GPT-2 class at tiny size on the CPU: every class decodes, its cache is the theory.

The theory is experiments/checks.py's `kv_values_per_token_layer`, from the
class name and config alone; the measured bytes come from the cache tensors
the class's own prefill returned. Timings are only checked to be positive
(the machine is shared): the figures belong to the GPU run.
"""

import pytest
import torch

from experiments import checks, inference
from models.gpt2 import zoo

CONTEXTS, BATCHES, DECODE = (16, 32), (1, 2), 3
CLASSES = list(zoo.discover())


@pytest.fixture(scope="module")
def points():
    torch.set_num_threads(1)
    return inference.measure_all(
        size="tiny", contexts=CONTEXTS, batches=BATCHES, decode_tokens=DECODE
    )


def test_every_class_is_measured_at_every_point(points):
    assert len(CLASSES) >= 9 and "GPT2" in CLASSES
    got = {(p["class"], p["context"], p["batch"]) for p in points}
    assert got == {(c, t, b) for c in CLASSES for t in CONTEXTS for b in BATCHES}
    for p in points:
        assert p["decode_tokens_per_s"] > 0 and p["ms_per_token"] > 0 and p["prefill_ms"] > 0
        assert p["decode_tokens_per_s"] == pytest.approx(p["batch"] * 1000 / p["ms_per_token"])


def test_attention_cache_bytes_equal_the_research_checks_theory(points):
    for p in points:
        cls = zoo.get_class(p["class"])
        cfg = inference.class_config(cls, "tiny", max(CONTEXTS) + DECODE)
        values = checks.kv_values_per_token_layer(p["class"], cfg)
        theory = values * p["context"] * p["batch"] * cfg.n_layer * 4  # float32
        assert p["attention_cache_bytes"] == theory, (p["class"], p["context"], p["batch"])
        assert p["cache_bytes"] >= p["attention_cache_bytes"]


def test_the_rest_of_the_cache_does_not_grow_with_the_context(points):
    rest = {}
    for p in points:
        rest.setdefault((p["class"], p["batch"]), set()).add(
            p["cache_bytes"] - p["attention_cache_bytes"]
        )
    assert all(len(v) == 1 for v in rest.values()), rest


def test_ratios_are_against_gpt2_at_the_same_point(points):
    rows = inference.ratios(points)
    assert len(rows) == len(points)
    by = {(p["class"], p["context"], p["batch"]): p for p in points}
    for r in rows:
        p, base = by[(r["class"], r["context"], r["batch"])], by[("GPT2", r["context"], r["batch"])]
        assert r["speedup"] == p["decode_tokens_per_s"] / base["decode_tokens_per_s"]
        assert r["cache_reduction"] == base["cache_bytes"] / p["cache_bytes"]
        if r["class"] == "GPT2":
            assert r["speedup"] == r["latency"] == r["cache_reduction"] == 1.0
    # The tiny MLA latent is 32 values per token and layer against GPT2's 2 x 64.
    mla = [r for r in rows if r["class"] == "GPT2_MLA"]
    assert {r["attention_cache_reduction"] for r in mla} == {128 / 32}
    table = inference.markdown(points, rows)
    assert table.count("\n") == len(points) + 2 and "| GPT2_MLA_KV | 32 | 2 |" in table


def test_ratios_without_the_base_at_a_point_name_it(points):
    without = [p for p in points if not (p["class"] == "GPT2" and p["batch"] == 2)]
    with pytest.raises(ValueError, match="no GPT2 point at context 16, batch 2 to compare"):
        inference.ratios(without)


def test_bad_sizes_and_points_are_refused():
    with pytest.raises(ValueError, match="unknown size 'huge'; accepted: 124m, tiny"):
        inference.class_config(zoo.get_class("GPT2"), "huge", 64)
    with pytest.raises(ValueError, match="accepted: positive integers"):
        inference.measure_class("GPT2", size="tiny", contexts=(0,), batches=(1,))
