"""GPT2_MLA_KV2M: KV2 with MLPSplice (the MLP runs through the latent)."""

from models.gpt2.gpt2 import GPT2
from models.gpt2.layers import LatentAttention, MLPSplice


class GPT2_MLA_KV2M(GPT2):
    FEATURES = frozenset({"mla", "kvsplice", "mlpsplice"})
    USES_WPE = False  # RoPE on Q and K

    def make_attention(self, config, layer):
        return LatentAttention(config, ra=False, splice=True, split_kv=True)

    def make_mlp(self, config, layer):
        return MLPSplice(config)
