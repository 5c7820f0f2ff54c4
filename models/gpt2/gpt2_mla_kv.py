"""GPT2_MLA_KV: MLA with KVSplice; the cache holds the compressed latent."""

from models.gpt2.gpt2 import GPT2
from models.gpt2.layers import LatentAttention


class GPT2_MLA_KV(GPT2):
    FEATURES = frozenset({"mla", "kvsplice"})
    USES_WPE = False  # RoPE on Q and K

    def make_attention(self, config, layer):
        return LatentAttention(config, ra=False, splice=True, split_kv=False)
