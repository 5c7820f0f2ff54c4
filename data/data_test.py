"""The offline data: exact GPT-2 tokens, the built memmaps, vision sets, clear errors."""

import json
import os
import sys

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
    assert meta["name"] == "t" and meta["tokenizer"] == "gpt2" and meta["eot_id"] == 50256
    for bad in (["--val-fraction", "0"], ["--val-fraction", "0.5"], []):
        name = [] if not bad else ["--name", "t"]
        with pytest.raises(SystemExit):  # a bad fraction, or no --name
            prepare_text.main(name + bad + ["--vocab-bpe", vocab, "--out-dir", str(out)] + docs)
    ds = text.open_dataset("shakespeare")  # the runfiles' build output
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


def _write_dataset(root, name, train, val, meta):
    d = root / name
    d.mkdir(parents=True)
    np.asarray(train, dtype=np.uint16).tofile(d / "train.bin")
    np.asarray(val, dtype=np.uint16).tofile(d / "val.bin")
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def test_dataset_lookup_order_and_complete_directories_only(tmp_path, monkeypatch):
    monkeypatch.delenv("KNLP_DATA_DIR", raising=False)
    here = tmp_path / "here"
    monkeypatch.setattr(text, "HERE", str(here))
    with pytest.raises(FileNotFoundError, match="dataset 'openwebtext' is not prepared"):
        text.dataset_dir("openwebtext")
    found = _write_dataset(here, "openwebtext", [1, 2], [3], {})  # next to the module
    assert text.dataset_dir("openwebtext") == str(found)
    incomplete = tmp_path / "root" / "openwebtext"
    incomplete.mkdir(parents=True)
    (incomplete / "train.bin").write_bytes(b"")  # no val.bin, no meta.json
    # A run names its dataset's directory: an incomplete one is an error, never a
    # fallback to another copy the run's action did not declare.
    with pytest.raises(FileNotFoundError, match=f"looked in {incomplete}\\)"):
        text.dataset_dir("openwebtext", data_dir=str(tmp_path / "root"))
    monkeypatch.setenv("KNLP_DATA_DIR", str(tmp_path / "env"))
    env = _write_dataset(tmp_path / "env", "openwebtext", [1], [2], {})
    assert text.dataset_dir("openwebtext") == str(env)  # the environment comes first


def test_a_meta_without_dtype_means_uint16(tmp_path):
    _write_dataset(tmp_path, "openwebtext", [7, 8, 9], [60000], {"vocab_size": 50257})
    ds = text.open_dataset("openwebtext", data_dir=str(tmp_path))
    assert ds.train.dtype == np.uint16 and ds.train.tolist() == [7, 8, 9]
    assert ds.val.tolist() == [60000]


def test_get_batch_uses_every_window_and_refuses_short_splits(tmp_path):
    _write_dataset(tmp_path, "openwebtext", list(range(6)), list(range(5)), {})
    ds = text.open_dataset("openwebtext", data_dir=str(tmp_path))
    g = torch.Generator().manual_seed(0)
    x, y = ds.get_batch("train", 3, 4, g)  # 6 tokens: one window of 4 and its targets
    assert x.tolist() == [[0, 1, 2, 3]] * 3 and y.tolist() == [[1, 2, 3, 4]] * 3
    starts = set(ds.get_batch("train", 64, 3, g)[0][:, 0].tolist())
    assert starts == {0, 1}  # the last window, 2..4 -> 3..5, is drawn too
    with pytest.raises(
        ValueError, match="^openwebtext/val has 5 tokens, too few for block_size 4$"
    ):
        ds.get_batch("val", 1, 4, g)
    with pytest.raises(ValueError, match="split 'test': accepted: train, val"):
        ds.get_batch("test", 1, 2, g)


def test_bazel_runfiles_are_searched_in_order(tmp_path, monkeypatch):
    rel = "gpt2_bpe/only_here.txt"
    for var in ("RUNFILES_DIR", "TEST_SRCDIR", "RUNFILES_MANIFEST_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "bin" / "tool")])
    assert tokenizer._runfiles_path(rel) is None
    beside = tmp_path / "bin" / "tool.runfiles" / rel  # a py_binary's own runfiles tree
    beside.parent.mkdir(parents=True)
    beside.write_text("")
    assert tokenizer._runfiles_path(rel) == str(beside)
    listed = tmp_path / "listed.txt"
    listed.write_text("")
    manifest = tmp_path / "MANIFEST"
    manifest.write_text(f"other/file /nowhere\n{rel} {listed}\n")
    monkeypatch.setenv("RUNFILES_MANIFEST_FILE", str(manifest))
    assert tokenizer._runfiles_path(rel) == str(listed)
    for var in ("TEST_SRCDIR", "RUNFILES_DIR"):
        tree = tmp_path / var
        (tree / "gpt2_bpe").mkdir(parents=True)
        (tree / rel).write_text("")
        monkeypatch.setenv(var, str(tree))
        assert tokenizer._runfiles_path(rel) == str(tree / rel)


def test_missing_bpe_files_name_where_they_were_looked_for(tmp_path):
    (tmp_path / "vocab.bpe").write_text("")  # encoder.json is missing
    with pytest.raises(FileNotFoundError, match=f"looked in {tmp_path}\\). Run through Bazel") as e:
        tokenizer.find_bpe_files(str(tmp_path))
    assert str(e.value).endswith(
        "and set KNLP_GPT2_BPE_DIR to $(bazel info output_base)/external/gpt2_bpe."
    )


def test_digits_limited_and_repeated_to_three_channels_in_batches():
    d = vision.load_vision("digits", channels=3, limit_train=100)
    assert d.x_train.shape == (100, 3, 8, 8) and len(d.y_train) == 100
    grey = vision.load_vision("digits", limit_train=100).x_train
    assert all(torch.equal(d.x_train[:, c], grey[:, 0]) for c in range(3))  # repeated
    plain = list(d.batches("test", 64))
    sizes = [len(y) for _, y in plain]
    assert set(sizes[:-1]) == {64} and 0 < sizes[-1] <= 64 and sum(sizes) == len(d.y_test)
    assert torch.equal(torch.cat([x for x, _ in plain]), d.x_test)
    shuffled = list(d.batches("train", 30, torch.Generator().manual_seed(0)))
    labels = torch.cat([y for _, y in shuffled])
    assert sorted(labels.tolist()) == sorted(d.y_train.tolist())
    assert not torch.equal(labels, d.y_train)


def test_vision_without_a_data_dir_says_what_to_set(monkeypatch):
    monkeypatch.delenv("KNLP_DATA_DIR", raising=False)
    with pytest.raises(
        FileNotFoundError, match=r"KNLP_DATA_DIR is not set.*\(see data/README.md\)"
    ):
        vision.load_vision("mnist")


def test_bpe_files_come_from_runfiles_without_a_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("KNLP_GPT2_BPE_DIR", raising=False)
    monkeypatch.setenv("RUNFILES_DIR", str(tmp_path))
    (tmp_path / "gpt2_bpe").mkdir()
    for name in ("vocab.bpe", "encoder.json"):
        (tmp_path / "gpt2_bpe" / name).write_text("")
    assert tokenizer.find_bpe_files() == (
        str(tmp_path / "gpt2_bpe" / "vocab.bpe"),
        str(tmp_path / "gpt2_bpe" / "encoder.json"),
    )
