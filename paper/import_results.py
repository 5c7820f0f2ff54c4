"""Imports a result directory into paper/data/<name>/, with its manifest.

    bazel run //paper:import_results -- <result_dir> [--name NAME]

Copies every .json and .csv file under <result_dir> (keeping sub-directories,
skipping plots, logs and models) into paper/data/<name>/, where <name> is
--name or the manifest's "name". The directory must hold a manifest.json with
the keys the paper's provenance appendix prints (REQUIRED). The copy is atomic:
it is assembled in a temporary directory beside the destination and swapped in
with a rename, so a failed import leaves the previous data untouched.
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

REQUIRED = ("name", "command", "git_commit", "machine", "versions", "created_utc")
SUFFIXES = (".json", ".csv")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ImportError_(Exception):
    pass


def read_manifest(result_dir):
    path = result_dir / "manifest.json"
    if not path.is_file():
        raise ImportError_(
            f"{path} not found: a result directory needs a manifest.json with keys "
            + ", ".join(REQUIRED)
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ImportError_(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise ImportError_(f"{path}: expected a JSON object")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise ImportError_(f"{path}: missing key(s) {', '.join(missing)}")
    return manifest


def import_results(result_dir, data_dir, name=None):
    """Copies result_dir's JSON/CSV into data_dir/<name>; returns (dest, files)."""
    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise ImportError_(f"{result_dir} is not a directory")
    manifest = read_manifest(result_dir)
    name = name or manifest["name"]
    if not _NAME.match(str(name)):
        raise ImportError_(
            f"data set name {name!r} is not accepted: lower-case letters, digits and _, "
            "starting with a letter"
        )
    files = sorted(p for p in result_dir.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    dest = data_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=data_dir))
    try:
        for src in files:
            rel = src.relative_to(result_dir)
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, staging / rel)
        os.chmod(staging, 0o755)
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{name}-", dir=data_dir))
            os.rename(dest, old / name)
        os.rename(staging, dest)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest, [f.relative_to(result_dir) for f in files]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result_dir")
    parser.add_argument("--name", help="data set name (default: the manifest's name)")
    parser.add_argument(
        "--data-dir", help="where data sets live (default: paper/data of this workspace)"
    )
    args = parser.parse_args(argv)
    root = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd()))
    cwd = Path(os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd()))
    data_dir = Path(args.data_dir) if args.data_dir else root / "paper" / "data"
    try:
        dest, files = import_results(cwd / args.result_dir, data_dir, args.name)
    except ImportError_ as err:
        print(f"import_results: {err}", file=sys.stderr)
        return 1
    print(f"imported {len(files)} file(s) into {dest}")
    for f in files:
        print(f"  {f}")
    print("Add the data set to DATASETS (and FIGURES) in paper/BUILD.bazel if it is new.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
