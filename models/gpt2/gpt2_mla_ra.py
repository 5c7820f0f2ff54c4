"""GPT2_MLA_RA: MLA with reciprocal attention."""

from models.gpt2.gpt2 import GPT2
from models.gpt2.layers import LatentAttention


class GPT2_MLA_RA(GPT2):
    FEATURES = frozenset({"mla", "ra"})
    USES_WPE = False  # RoPE on Q and K

    def make_attention(self, config, layer):
        return LatentAttention(config, ra=True, splice=False, split_kv=False)
