"""Imports a finished run into paper/data/<set>/: the only way data reaches the paper.

    bazel run //paper:import_results -- results/<experiment>/<run_id> [--name SET] [--allow-dirty]

Copies the run's manifest.json, summary.json and val_curves.csv (where the run
wrote one) into paper/data/<SET>/, where SET is --name or the manifest's
`experiment`. It refuses, with one line naming the file and the field or
value:

  * a manifest missing a field of experiments/results.py REQUIRED_FIELDS;
  * a `git.commit` of null (the run's code is unknown);
  * an unfinished run: no summary.json, or `complete` false (it names the
    runs that are pending or failed);
  * a run from a modified tree (`git.dirty` true), unless --allow-dirty: the
    paper then marks the data set "dirty tree" in its caption and appendix;
  * an experiment the paper has no renderer for (paper/render/texgen.py), or
    one that another data set already holds (the paper prints one per
    experiment: import it under that set's name to replace it).

The copy is assembled in a temporary directory beside the destination and
renamed into place, so a failed import leaves the previous data untouched.
The paper's BUILD discovers the new set from its manifest; nothing else to edit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from experiments.results import ResultsError, atomic_write_bytes, get_field, missing_fields
from paper.render.texgen import RENDERERS

FILES = ("manifest.json", "summary.json", "val_curves.csv")  # the last one where present
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED = ("provenance",)  # //paper:provenance_tex is the index of all sets


class ImportRefused(Exception):
    """The run cannot be imported; the message is one line naming the file and field."""


def _read_json(path):
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ImportRefused(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise ImportRefused(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def check_manifest(path, allow_dirty=False):
    manifest = _read_json(path)
    if manifest is None:
        raise ImportRefused(f"{path} not found: not a run directory of a knlp run target")
    missing = missing_fields(manifest)
    if missing:
        raise ImportRefused(
            f"{path}: missing field {', '.join(missing)} "
            "(required by experiments/results.py REQUIRED_FIELDS)"
        )
    if get_field(manifest, "git.commit") is None:
        raise ImportRefused(
            f"{path}: git.commit is null: the run's code is unknown (not run from a git "
            "checkout); rerun it from one"
        )
    if get_field(manifest, "git.dirty") and not allow_dirty:
        raise ImportRefused(
            f"{path}: git.dirty is true: the run was made from a modified tree; commit and "
            "rerun, or pass --allow-dirty (the paper then marks it 'dirty tree')"
        )
    if manifest["experiment"] not in RENDERERS:
        raise ImportRefused(
            f"{path}: experiment {manifest['experiment']!r} has no renderer in the paper; "
            f"accepted: {', '.join(RENDERERS)}"
        )
    return manifest


def check_summary(path, manifest):
    summary = _read_json(path)
    if summary is None:
        raise ImportRefused(f"{path} not found: the run is unfinished (summary.json is written)")
    if summary.get("complete") is not True:
        unfinished = [
            f"{r.get('run')} ({r.get('status')})"
            for r in summary.get("runs", [])
            if isinstance(r, dict) and r.get("status") != "done"
        ]
        raise ImportRefused(
            f"{path}: complete is {json.dumps(summary.get('complete'))}: the run is unfinished; "
            f"not done: {', '.join(unfinished) or 'none listed'}"
        )
    for key in ("experiment", "run_id"):
        if summary.get(key) != manifest[key]:
            raise ImportRefused(
                f"{path}: {key} is {summary.get(key)!r}, but manifest.json says {manifest[key]!r}"
            )
    return summary


def import_run(run_dir, data_dir, name=None, allow_dirty=False):
    """Copies a finished run into data_dir/<name>; returns (dest, the files copied)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ImportRefused(
            f"{run_dir} is not a directory (expected results/<experiment>/<run_id>)"
        )
    manifest = check_manifest(run_dir / "manifest.json", allow_dirty)
    check_summary(run_dir / "summary.json", manifest)
    name = name or manifest["experiment"]
    if not _NAME.match(str(name)) or name in RESERVED:
        raise ImportRefused(
            f"data set name {name!r} is not accepted: lower-case letters, digits and _, "
            f"starting with a letter, and not {', '.join(RESERVED)}"
        )
    data_dir = Path(data_dir)
    for other in sorted(data_dir.glob("*/manifest.json")):
        theirs = _read_json(other) or {}
        if other.parent.name != name and theirs.get("experiment") == manifest["experiment"]:
            raise ImportRefused(
                f"{other} already holds a {manifest['experiment']} run and the paper prints one "
                f"data set per experiment: import with --name {other.parent.name} to replace it"
            )
    files = [f for f in FILES if (run_dir / f).is_file()]
    data_dir.mkdir(parents=True, exist_ok=True)
    dest = data_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=data_dir))
    try:
        for f in files:  # each file fsynced; the directory swap below makes them visible
            atomic_write_bytes(str(staging / f), (run_dir / f).read_bytes())
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
    return dest, files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="results/<experiment>/<run_id>")
    parser.add_argument("--name", help="data set name (default: the manifest's experiment)")
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="import a run made from a modified tree; the paper marks it 'dirty tree'",
    )
    parser.add_argument(
        "--data-dir", help="where data sets live (default: paper/data of this workspace)"
    )
    args = parser.parse_args(argv)
    root = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd()))
    cwd = Path(os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd()))
    data_dir = Path(args.data_dir) if args.data_dir else root / "paper" / "data"
    try:
        dest, files = import_run(cwd / args.run_dir, data_dir, args.name, args.allow_dirty)
    except (ImportRefused, ResultsError) as err:  # ResultsError: a copy could not be written
        print(f"import_results: {err}", file=sys.stderr)
        return 1
    print(f"imported {', '.join(files)} into {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
