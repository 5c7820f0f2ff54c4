"""Cache bytes per token per layer, read off the cache tensors after a prefill.

Theory (fp32, 4 bytes): GPT2 stores K and V, 2 x 768 values; MLA the latent,
256 (6x fewer); KVSplice the compressed latent, 128 at ratio 0.5 (12x fewer).
"""

import pytest
import torch

from models.gpt2 import zoo
from models.gpt2.config import preset
from models.gpt2.layers import cache_bytes

THEORY_VALUES = {"GPT2": 2 * 768, "GPT2_MLA": 256, "GPT2_MLA_KV": 128}
LAYERS = 2


def measure(name, T):
    torch.manual_seed(0)
    cfg = preset("124m", n_layer=LAYERS, vocab_size=512)
    model = zoo.get_class(name)(cfg).eval()
    with torch.no_grad():
        _, _, cache = model(torch.randint(0, 512, (1, T)), use_cache=True)
    return cache, cache_bytes(cache) / (T * LAYERS)


@pytest.mark.parametrize("name", THEORY_VALUES)
def test_cache_bytes_match_theory_and_scale_linearly(name):
    per_token = {}
    for T in (256, 512, 1024):
        cache, per_token[T] = measure(name, T)
        theory = THEORY_VALUES[name] * 4
        assert abs(per_token[T] - theory) / theory < 0.05, (name, T, per_token[T], theory)
    # linear in T: bytes per token is the same at every length
    assert per_token[256] == per_token[512] == per_token[1024]


def test_cache_tensor_shapes():
    cache, _ = measure("GPT2_MLA", 256)
    assert cache["layers"][0]["attn"]["c"].shape == (1, 256, 256)
    cache, _ = measure("GPT2_MLA_KV", 256)
    assert cache["layers"][0]["attn"]["z"].shape == (1, 256, 128)


def test_compression_ratios():
    _, base = measure("GPT2", 256)
    _, mla = measure("GPT2_MLA", 256)
    _, kv = measure("GPT2_MLA_KV", 256)
    assert base / mla == pytest.approx(6.0, rel=0.05)
    assert base / kv == pytest.approx(12.0, rel=0.05)
