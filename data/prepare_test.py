"""The hub and vision preparers, offline: the network calls are replaced by local files.

prepare_hub.py and prepare_vision.py run only on hosts with network, so the
gate never runs them for real. Here `datasets.load_dataset` and
`urllib.request.urlretrieve` hand over local data, and what the scripts write
must be what data/text.py and data/vision.py read back.
"""

import gzip
import io
import json
import pickle
import sys
import tarfile
import types

import numpy as np
import pytest
import torch

from data import prepare_hub, prepare_vision, text, tokenizer, vision

DOCS = [f"Document number {i} of the stream." for i in range(5)]


def fake_datasets(monkeypatch, docs=DOCS):
    calls = []

    def load_dataset(path, config, split, streaming):
        calls.append((path, config, split, streaming))
        return iter({"text": d} for d in docs)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_prepare_hub_writes_what_open_dataset_reads(tmp_path, monkeypatch, capsys):
    calls = fake_datasets(monkeypatch)
    assert (
        prepare_hub.main(["--dataset", "tinystories", "--out", str(tmp_path), "--val-every", "2"])
        == 0
    )
    assert calls == [("roneneldan/TinyStories", None, "train", True)]
    enc = tokenizer.gpt2_encoding()
    ids = [enc.encode_ordinary(d) + [tokenizer.EOT_ID] for d in DOCS]
    ds = text.open_dataset("tinystories", data_dir=str(tmp_path))
    # Every 2nd document (0, 2, 4) goes to val, each ending in <|endoftext|>.
    assert ds.val.tolist() == ids[0] + ids[2] + ids[4]
    assert ds.train.tolist() == ids[1] + ids[3]
    assert ds.meta == {
        "name": "tinystories",
        "source": "roneneldan/TinyStories train",
        "tokenizer": "gpt2",
        "vocab_size": tokenizer.VOCAB_SIZE,
        "eot_id": tokenizer.EOT_ID,
        "dtype": "uint16",
        "train_tokens": len(ids[1] + ids[3]),
        "val_tokens": len(ids[0] + ids[2] + ids[4]),
        "split": "every 2th document -> val",
    }
    assert sorted(p.name for p in (tmp_path / "tinystories").iterdir()) == [
        "meta.json",
        "train.bin",
        "val.bin",
    ]
    assert f"tinystories: wrote {tmp_path / 'tinystories'}" in capsys.readouterr().err


def test_prepare_hub_stops_at_the_token_cap(tmp_path, monkeypatch):
    calls = fake_datasets(monkeypatch)
    first = len(tokenizer.gpt2_encoding().encode_ordinary(DOCS[0])) + 1
    prepare_hub.main(
        ["--dataset", "fineweb-edu", "--out", str(tmp_path), "--max-tokens", str(first + 1)]
    )
    assert calls[0][:3] == ("HuggingFaceFW/fineweb-edu", "sample-10BT", "train")
    meta = json.loads((tmp_path / "fineweb-edu" / "meta.json").read_text())
    # Two documents reach the cap (the second crosses it); the rest are not read.
    assert meta["val_tokens"] == first and 0 < meta["train_tokens"] <= 2 * first
    assert meta["source"] == "HuggingFaceFW/fineweb-edu sample-10BT train"
    # A cap the documents reach exactly stops there too.
    prepare_hub.main(
        ["--dataset", "fineweb-edu", "--out", str(tmp_path), "--max-tokens", str(first)]
    )
    meta = json.loads((tmp_path / "fineweb-edu" / "meta.json").read_text())
    assert (meta["val_tokens"], meta["train_tokens"]) == (first, 0)


def test_prepare_hub_needs_out_and_the_datasets_package(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KNLP_DATA_DIR", raising=False)
    with pytest.raises(SystemExit):
        prepare_hub.main(["--dataset", "tinystories"])
    assert "--out (or KNLP_DATA_DIR) is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare_hub.main(["--dataset", "wikitext", "--out", str(tmp_path)])
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails
    assert prepare_hub.main(["--dataset", "tinystories", "--out", str(tmp_path)]) == 2
    assert "needs the `datasets` package" in capsys.readouterr().err
    monkeypatch.setenv("KNLP_DATA_DIR", str(tmp_path))
    fake_datasets(monkeypatch)
    assert prepare_hub.main(["--dataset", "tinystories"]) == 0
    assert (tmp_path / "tinystories" / "val.bin").exists()


def _idx_gz(arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes())


def _cifar_tar(top, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, obj in members.items():
            data = pickle.dumps(obj)
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fake_downloads(monkeypatch, files):
    """urlretrieve that writes files[basename of url] to the target."""
    fetched = []

    def urlretrieve(url, target):
        fetched.append((url, target))
        with open(target, "wb") as f:
            f.write(files[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(prepare_vision.urllib.request, "urlretrieve", urlretrieve)
    return fetched


def test_prepare_vision_mnist_lands_where_load_vision_reads_it(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte.gz": _idx_gz(rng.integers(0, 255, (6, 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx_gz(np.arange(6) % 10),
        "t10k-images-idx3-ubyte.gz": _idx_gz(rng.integers(0, 255, (2, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": _idx_gz(np.array([3, 4])),
    }
    fetched = fake_downloads(monkeypatch, files)
    assert prepare_vision.main(["--dataset", "mnist", "--out", str(tmp_path)]) == 0
    assert [t for _, t in fetched] == [str(tmp_path / "mnist" / n) + ".tmp" for n in files]
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(files)
    d = vision.load_vision("mnist", data_dir=str(tmp_path))
    assert d.x_train.shape == (6, 1, 28, 28) and d.y_test.tolist() == [3, 4]


@pytest.mark.parametrize(
    "name, top, train, test, key, classes",
    [
        (
            "cifar10",
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            "test_batch",
            b"labels",
            10,
        ),
        ("cifar100", "cifar-100-python", ["train"], "test", b"fine_labels", 100),
    ],
)
def test_prepare_vision_cifar_is_unpacked_for_load_vision(
    tmp_path, monkeypatch, name, top, train, test, key, classes
):
    rng = np.random.default_rng(1)

    def batch(n, label):
        return {b"data": rng.integers(0, 255, (n, 3 * 32 * 32)).tolist(), key: [label] * n}

    members = {f: batch(2, i) for i, f in enumerate(train)} | {test: batch(3, classes - 1)}
    archive = f"{name.replace('cifar', 'cifar-')}-python.tar.gz"
    fake_downloads(monkeypatch, {archive: _cifar_tar(top, members)})
    assert prepare_vision.main(["--dataset", name, "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [top]  # the archive is removed
    d = vision.load_vision(name, data_dir=str(tmp_path), channels=3)
    assert d.x_train.shape == (2 * len(train), 3, 32, 32) and d.x_train.dtype == torch.float32
    assert d.y_train.tolist() == [i for i in range(len(train)) for _ in range(2)]
    assert d.y_test.tolist() == [classes - 1] * 3 and d.num_classes == classes
    expected = np.asarray(members[train[0]][b"data"][0], dtype=np.float32) / 255.0
    # load_vision normalizes by the training set's mean and std.
    raw = np.concatenate([np.asarray(members[f][b"data"], dtype=np.float32) for f in train]) / 255.0
    mean, std = raw.mean(), raw.std() + 1e-8
    torch.testing.assert_close(
        d.x_train[0].flatten(), torch.from_numpy((expected - mean) / std), rtol=1e-5, atol=1e-5
    )


def test_prepare_vision_needs_out(monkeypatch, capsys):
    monkeypatch.delenv("KNLP_DATA_DIR", raising=False)
    with pytest.raises(SystemExit):
        prepare_vision.main(["--dataset", "mnist"])
    assert "--out (or KNLP_DATA_DIR) is required" in capsys.readouterr().err


@pytest.mark.parametrize("member", ["../outside", "/abs/path"])
def test_prepare_vision_refuses_members_outside_the_destination(tmp_path, monkeypatch, member):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo(member)
        tf.addfile(info, io.BytesIO(b""))
    fake_downloads(monkeypatch, {"cifar-10-python.tar.gz": buf.getvalue()})
    with pytest.raises(SystemExit, match=f"refusing archive member '{member}'"):
        prepare_vision.main(["--dataset", "cifar10", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "outside").exists()
