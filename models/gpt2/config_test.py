import pytest

from models.gpt2.config import PRESETS, GPT2Config, check_features, preset


def test_presets_have_64_wide_heads():
    for name, dims in PRESETS.items():
        cfg = preset(name)
        assert cfg.head_dim == 64, name
        assert (cfg.n_layer, cfg.n_head, cfg.n_embd) == (
            dims["n_layer"],
            dims["n_head"],
            dims["n_embd"],
        )


@pytest.mark.parametrize(
    "ratio, width", [(4.0, 3072), (5.0, 3840), (4.25, 3264), (3.333, 2560), (2.667, 2048)]
)
def test_ratio_widths_are_multiples_of_64(ratio, width):
    cfg = preset("124m", mlp_ratio=ratio)
    assert cfg.mlp_dim == width
    assert cfg.mlp_dim % 64 == 0


def test_kvsplice_compressed_width():
    assert GPT2Config(d_latent=256, kv_ratio=0.5).d_compressed == 128


def test_unknown_option_lists_accepted():
    with pytest.raises(ValueError, match="no option 'mlp_ration'.*accepted:.*mlp_ratio"):
        GPT2Config().with_options(mlp_ration=5.0)


def test_unknown_preset_lists_accepted():
    with pytest.raises(ValueError, match="accepted: tiny, 124m, medium, large, xl"):
        preset("huge")


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="ract_stat='median'.*topk, max, entropy, rms"):
        GPT2Config(ract_stat="median")
    with pytest.raises(ValueError, match="n_embd=100"):
        GPT2Config(n_embd=100, n_head=12)


def test_option_of_a_missing_mechanism_is_refused():
    with pytest.raises(ValueError, match="GPT2 does not implement 'ra'.*ra_alpha=0.5"):
        check_features("GPT2", frozenset(), GPT2Config(ra_alpha=0.5))
    check_features("GPT2_RA", frozenset({"ra"}), GPT2Config(ra_alpha=0.5))


@pytest.mark.parametrize(
    "field, value, accepted",
    [
        ("n_layer", 0, "a positive int"),
        ("block_size", 1.5, "a positive int"),
        ("d_latent", -1, "a positive int"),
        ("mlp_ratio", 0, "a positive number"),
        ("mlp_ratio", "4", "a positive number"),
        ("ract_apply", "logits", "output, weights"),
        ("kv_ratio", 0.0, "a number in (0, 1]"),
        ("kv_ratio", 1.5, "a number in (0, 1]"),
        ("ra_alpha", -0.1, "a number in [0, 1]"),
        ("ra_alpha", 1.5, "a number in [0, 1]"),
    ],
)
def test_each_bad_value_is_named_with_what_is_accepted(field, value, accepted):
    with pytest.raises(ValueError) as e:
        GPT2Config(**{field: value})
    assert str(e.value) == f"GPT2Config.{field}={value!r} is invalid; accepted: {accepted}"


@pytest.mark.parametrize("field, value", [("kv_ratio", 1.0), ("ra_alpha", 0.0), ("ra_alpha", 1.0)])
def test_range_edges_are_accepted(field, value):
    assert getattr(GPT2Config(**{field: value}), field) == value


def test_every_mechanism_of_a_class_is_checked():
    # A class with "ra" still gets its other mechanisms' fields checked.
    with pytest.raises(ValueError, match="GPT2_RA does not implement 'mla'.*d_latent=128"):
        check_features("GPT2_RA", frozenset({"ra"}), GPT2Config(d_latent=128))
