#!/bin/sh
# Builds the pinned Python venv inside an image, where WORKSPACE's pip_venv
# (tools/bazel/python.bzl, layout "external") will look for it: venv.py names it
# from the lock and puts it under the venv root KNLP_VENV_ROOT, which the
# Containerfiles set to images.bzl's venv_root (/opt/knlp/venvs). Bazel in the
# container then finds it ready instead of installing it on first use, and a
# client with --config=remote-exec names the same interpreter path.
set -eu
lock=${1:?usage: prime_venv.sh LOCK}
[ -f "$lock" ] || { echo "prime_venv.sh: no lock at $lock" >&2; exit 2; }
python=/usr/bin/python3.11
"$python" /opt/knlp/tools/bazel/venv.py --interpreter "$python" --lock "$lock"
