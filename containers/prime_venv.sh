#!/bin/sh
# Builds the pinned Python venv inside an image, at the path WORKSPACE's
# pip_venv (tools/bazel/python.bzl, layout "external") derives from the lock:
# /var/tmp/knlp/venv-<first 16 hex of the lock's sha256>-py<X.Y.Z>. Bazel in
# the container then finds it ready instead of installing it on first use.
set -eu
lock=${1:?usage: prime_venv.sh LOCK}
[ -f "$lock" ] || { echo "prime_venv.sh: no lock at $lock" >&2; exit 2; }
python=/usr/bin/python3.11
sha=$(sha256sum "$lock" | cut -c1-16)
version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
"$python" /opt/knlp/tools/bazel/venv.py --interpreter "$python" --lock "$lock" \
  --dest "/var/tmp/knlp/venv-$sha-py$version"
