"""GPT2_MLA_RA_KV: MLA + reciprocal attention + KVSplice."""

from models.gpt2.gpt2 import GPT2
from models.gpt2.layers import LatentAttention


class GPT2_MLA_RA_KV(GPT2):
    FEATURES = frozenset({"mla", "ra", "kvsplice"})
    USES_WPE = False  # RoPE on Q and K

    def make_attention(self, config, layer):
        return LatentAttention(config, ra=True, splice=True, split_kv=False)
