"""GPT2_RA: GPT-2 with reciprocal attention (fixed mix, or learned with ra_learned)."""

from models.gpt2.gpt2 import GPT2
from models.gpt2.layers import CausalSelfAttention


class GPT2_RA(GPT2):
    FEATURES = frozenset({"ra"})

    def make_attention(self, config, layer):
        return CausalSelfAttention(config, ra=True)
