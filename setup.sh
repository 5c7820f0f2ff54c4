#!/usr/bin/env bash
# Set this machine up for knlp: Bazel and every toolchain the tests need.
#
#   ./setup.sh          (as root, or as a user with sudo)
#
# Supported: Debian 12 (bookworm) on x86-64. Everything comes from Debian's
# archive; Bazel itself fetches the rest (the Python packages from the pinned
# locks, buildifier from npm) on the first build. Safe to run again: a second
# run installs nothing and finishes in seconds.
set -euo pipefail

# Debian package -> why knlp needs it. One line each; the doctor
# (bazel run //tools:doctor) reports the resulting tools and versions.
PACKAGES=(
  "bazel-rules-java:rules_java for Bazel 4.2.3, offline"
  "bazel-platforms:the platforms constraint values, offline (tools/bazel/bazel_rules.bzl)"
  "bazel-bootstrap-source:Bazel's remote worker, built from its source (containers/remote/)"
  "python3.11:the pinned interpreter"
  "python3.11-venv:venvs for the pinned Python packages"
  "python3.11-dev:headers for C extensions (fork wheels)"
  "git:workspace status, fork pins"
  "ca-certificates:HTTPS to the package registries"
  "hipcc:HIP kernels for AMD GPUs (compile only here)"
  "llvm-15:HIP device library for gfx1100 (W7900)"
  "g++:host compiler for nvcc and the kernels' CPU emulation (//kernels)"
  "texlive-latex-base:the paper"
  "texlive-latex-recommended:the paper"
  "texlive-latex-extra:the paper (algorithm, multirow)"
  "texlive-fonts-recommended:the paper"
  "texlive-publishers:the paper (IEEEtran)"
  "texlive-science:the paper (siunitx)"
  "latexmk:the paper"
  "poppler-utils:pdftotext, the PDF checks"
  "nginx:the shared Bazel cache (WebDAV)"
  "libnginx-mod-http-dav-ext:the shared Bazel cache (WebDAV)"
  "buildah:container images without a daemon"
)

die() { echo "setup.sh: $*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] || die "unsupported OS $(uname -s); knlp supports Debian 12 on x86-64"
arch=$(uname -m)
[ "$arch" = x86_64 ] || die "unsupported architecture $arch; knlp supports Debian 12 on x86-64 (x86_64)"
# shellcheck disable=SC1091
. /etc/os-release
[ "${ID:-}" = debian ] && [ "${VERSION_ID:-}" = 12 ] ||
  die "unsupported OS ${PRETTY_NAME:-unknown}; knlp supports Debian 12 (bookworm) on x86-64"

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "run as root, or install sudo"
  SUDO=sudo
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

wanted=()
for entry in "${PACKAGES[@]}"; do wanted+=("${entry%%:*}"); done
# A machine that already has a working Bazel keeps it.
if bazel_path=$(command -v bazel) && "$bazel_path" --version >/dev/null 2>&1; then
  echo "found     bazel at $bazel_path"
else
  wanted=(bazel-bootstrap "${wanted[@]}")
fi

missing=()
for pkg in "${wanted[@]}"; do installed "$pkg" || missing+=("$pkg"); done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null && [ ! -t 0 ]; then
    die "needs root to install ${missing[*]}; run it as root or with a terminal for sudo's password"
  fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for pkg in "${missing[@]}"; do
    echo "installed $pkg $(dpkg-query -W -f='${Version}' "$pkg")"
  done
fi

for entry in "${PACKAGES[@]}"; do
  pkg=${entry%%:*}
  printf 'found     %-27s %-28s %s\n' "$pkg" "$(dpkg-query -W -f='${Version}' "$pkg")" "${entry#*:}"
done
# The CUDA toolkit is not in Debian's archive: it comes from NVIDIA's Debian 12
# repository (containers/images.bzl pins the version the images carry).
if nvcc_path=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null); then
  echo "found     nvcc $("$nvcc_path" --version | grep -o 'release [0-9.]*')"
else
  echo "MISSING   nvcc: the CUDA kernel targets in //kernels fail to build without it;"
  echo "          install CUDA 13.0 from NVIDIA's Debian 12 repository (cuda-nvcc-13-0)"
fi
echo "setup.sh: done. Next: bazel test //..."
