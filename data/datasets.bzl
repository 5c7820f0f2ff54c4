"""Every dataset a run can read, and where its files come from. Literals only.

Starlark loads this file to give each run its dataset's files as inputs
(experiments/defs.bzl) and to declare @knlp_prepared (WORKSPACE);
data/text.py and data/vision.py read the same text for their error messages
and tokenizers (tools/bazel/bzl_data.py).
"""

# Built by Bazel from pinned archives: name -> the target that builds it.
BUILT = {
    "shakespeare": "//data:shakespeare",
    "shakespeare_char": "//data:shakespeare_char",
}

# Prepared by hand on a host that reaches the dataset hubs, under
# $KNLP_DATA_DIR/<name>/ (README.md, "Datasets for GPU hosts"): name -> modality
# and the command that prepares it. Runs see them as @knlp_prepared//:<name>.
PREPARED = {
    "fineweb-edu": {"modality": "text", "prepare": "bazel run //data:prepare_hub -- --dataset fineweb-edu --out $KNLP_DATA_DIR"},
    "openwebtext": {"modality": "text", "prepare": "bazel run //data:prepare_hub -- --dataset openwebtext --out $KNLP_DATA_DIR"},
    "tinystories": {"modality": "text", "prepare": "bazel run //data:prepare_hub -- --dataset tinystories --out $KNLP_DATA_DIR"},
    "mnist": {"modality": "vision", "prepare": "bazel run //data:prepare_vision -- --dataset mnist --out $KNLP_DATA_DIR"},
    "cifar10": {"modality": "vision", "prepare": "bazel run //data:prepare_vision -- --dataset cifar10 --out $KNLP_DATA_DIR"},
    "cifar100": {"modality": "vision", "prepare": "bazel run //data:prepare_vision -- --dataset cifar100 --out $KNLP_DATA_DIR"},
}

# Shipped inside a package of the venv (scikit-learn's wheel): no files of their own.
IN_VENV = ["digits"]

# Text datasets whose tokens are not GPT-2 BPE: name -> tokenizer (meta.json says the same).
TOKENIZERS = {"shakespeare_char": "char"}
