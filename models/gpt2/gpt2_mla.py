"""GPT2_MLA: Multi-head latent attention; the cache holds the 256-wide latent."""

from models.gpt2.gpt2 import GPT2
from models.gpt2.layers import LatentAttention


class GPT2_MLA(GPT2):
    FEATURES = frozenset({"mla"})
    USES_WPE = False  # RoPE on Q and K

    def make_attention(self, config, layer):
        return LatentAttention(config, ra=False, splice=False, split_kv=False)
