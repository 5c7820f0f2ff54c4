"""GPT2_MLA_RA_KVM: RA + MLA + KVSplice + MLPSplice."""

from models.gpt2.gpt2 import GPT2
from models.gpt2.layers import LatentAttention, MLPSplice


class GPT2_MLA_RA_KVM(GPT2):
    FEATURES = frozenset({"mla", "ra", "kvsplice", "mlpsplice"})
    USES_WPE = False  # RoPE on Q and K

    def make_attention(self, config, layer):
        return LatentAttention(config, ra=True, splice=True, split_kv=False)

    def make_mlp(self, config, layer):
        return MLPSplice(config)
