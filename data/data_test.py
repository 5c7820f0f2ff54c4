"""The offline data: exact GPT-2 tokens, the built memmaps, vision sets, clear errors."""

import json
import os

import numpy as np
import pytest
import torch

from data import prepare_text, text, tokenizer, vision


def test_gpt2_encoding_is_exact():
    enc = tokenizer.gpt2_encoding()
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.n_vocab == 50257
    assert enc.encode("<|endoftext|>", allowed_special="all") == [tokenizer.EOT_ID]
    s = "To be, or not to be: that is the question."
    assert enc.decode(enc.encode(s)) == s


def test_shakespeare_memmaps_are_real_tokens():
    ds = text.open_dataset("shakespeare")
    assert ds.meta["vocab_size"] == 50257
    assert ds.train.dtype == np.uint16 and ds.val.dtype == np.uint16
    assert ds.meta["train_tokens"] == len(ds.train) > 1_000_000
    assert ds.meta["val_tokens"] == len(ds.val) > 50_000
    assert len(ds.meta["documents"]) > 30
    # Decodes back to English, and documents are separated by <|endoftext|>.
    enc = tokenizer.gpt2_encoding()
    assert "the" in enc.decode(ds.train[:2000].tolist()).lower()
    assert int((ds.val == tokenizer.EOT_ID).sum()) == len(
        ds.meta["documents"]
    )  # each doc ends in val
    g = torch.Generator().manual_seed(0)
    x, y = ds.get_batch("train", 4, 32, g)
    assert x.shape == (4, 32) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_shakespeare_char_vocabulary_is_recorded_and_decodes():
    ds = text.open_dataset("shakespeare_char")
    chars = ds.meta["chars"]
    assert ds.meta["tokenizer"] == "char" and ds.meta["vocab_size"] == len(chars)
    assert list(chars) == sorted(set(chars)) and 60 < len(chars) < 128
    assert int(ds.train.max()) < len(chars) and int(ds.val.max()) < len(chars)
    assert ds.meta["train_tokens"] == len(ds.train) > 4_000_000
    assert ds.meta["val_tokens"] == len(ds.val) > 200_000
    assert "".join(chars[i] for i in ds.train[:25].tolist()) == "ALL'S WELL THAT ENDS WELL"
    assert text.tokenizer_of("shakespeare_char") == "char"
    assert text.tokenizer_of("fineweb-edu") == "gpt2"


def test_prepare_text_char_vocabulary(tmp_path):
    doc = tmp_path / "a.txt"
    doc.write_text("to be or not to be\n" * 30)
    out = tmp_path / "out"
    prepare_text.main(["--name", "c", "--tokenizer", "char", "--out-dir", str(out), str(doc)])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["chars"] == "\n benort" and meta["vocab_size"] == 8
    ids = np.concatenate([np.fromfile(out / f"{s}.bin", dtype=np.uint16) for s in ("train", "val")])
    assert "".join(meta["chars"][i] for i in ids) == doc.read_text()
    with pytest.raises(SystemExit):  # gpt2 needs the BPE files
        prepare_text.main(["--name", "c", "--out-dir", str(out), str(doc)])


def test_prepare_text_split_and_meta(tmp_path):
    docs = []
    for i in range(3):
        p = tmp_path / f"doc{i}.txt"
        p.write_text(("Friends, Romans, countrymen, lend me your ears. " * 40) + str(i))
        docs.append(str(p))
    vocab, _ = tokenizer.find_bpe_files()
    out = tmp_path / "out"
    prepare_text.main(["--name", "t", "--vocab-bpe", vocab, "--out-dir", str(out)] + docs)
    meta = json.loads((out / "meta.json").read_text())
    train = np.fromfile(out / "train.bin", dtype=np.uint16)
    val = np.fromfile(out / "val.bin", dtype=np.uint16)
    assert meta["train_tokens"] == train.size and meta["val_tokens"] == val.size
    total = sum(d["tokens"] for d in meta["documents"])
    assert train.size + val.size == total
    assert 0.03 < val.size / total < 0.08
    ds = text.open_dataset("shakespeare", data_dir=str(tmp_path / "none"))  # falls back
    assert ds.name == "shakespeare"


def test_missing_dataset_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("KNLP_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="bazel run //data:prepare_hub -- --dataset"):
        text.open_dataset("fineweb-edu")
    with pytest.raises(ValueError, match="known: fineweb-edu, openwebtext, shakespeare"):
        text.open_dataset("wikitext")
    with pytest.raises(FileNotFoundError, match="prepare_vision -- --dataset mnist"):
        vision.load_vision("mnist")
    with pytest.raises(FileNotFoundError, match="prepare_vision -- --dataset cifar10"):
        vision.load_vision("cifar10")


def test_digits_and_disk_mnist(tmp_path):
    d = vision.load_vision("digits", image_size=28)
    assert d.x_train.shape[1:] == (1, 28, 28) and d.num_classes == 10
    assert len(d.x_train) + len(d.x_test) == 1797
    assert set(d.y_test.tolist()) == set(range(10))
    # A tiny MNIST in IDX format on disk is read as such.
    m = tmp_path / "mnist"
    m.mkdir()
    rng = np.random.default_rng(0)

    def idx(path, arr):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
        path.write_bytes(header + arr.astype(np.uint8).tobytes())

    idx(m / "train-images-idx3-ubyte", rng.integers(0, 255, (5, 28, 28)))
    idx(m / "train-labels-idx1-ubyte", np.arange(5))
    idx(m / "t10k-images-idx3-ubyte", rng.integers(0, 255, (2, 28, 28)))
    idx(m / "t10k-labels-idx1-ubyte", np.arange(2))
    mn = vision.load_vision("mnist", data_dir=str(tmp_path), image_size=32)
    assert mn.x_train.shape == (5, 1, 32, 32) and mn.y_train.tolist() == [0, 1, 2, 3, 4]
    assert os.path.isdir(m)
