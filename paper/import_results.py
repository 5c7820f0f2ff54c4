"""Imports an installed run into paper/data/<set>/: the only way data reaches the paper.

    bazel run //paper:import_results -- results/<experiment>/<run_id> [--name SET] [--allow-dirty]

`bazel run //experiments:<experiment>` installs a run into
results/<experiment>/<run_id>/ (experiments/install.py). This copies its
manifest.json, summary.json and val_curves.csv (where the run wrote one)
into paper/data/<SET>/, where SET is --name or the manifest's `experiment`.
The files are checked as the run record's classes (experiments/record.py
Manifest and Summary), and the import is refused, with one line naming the
file and the field or value, for:

  * a manifest missing a field of experiments/record.py REQUIRED_FIELDS, a
    record of another schema, or a document not of the declared shape;
  * a `git.commit` of null (the run's code is unknown);
  * an unfinished run: no summary.json, or `complete` false (it names the
    runs that failed);
  * a run from a modified tree (`git.dirty` true), unless --allow-dirty: the
    paper then marks the data set "dirty tree" in its caption and appendix;
  * a summary whose runs are not the manifest's `runs` (each run's inputs
    digest, which the paper's appendix prints);
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

from experiments.record import SCHEMA, Manifest, RecordError, Summary, missing_fields
from experiments.results import ResultsError, atomic_write_bytes
from paper.render.texgen import RENDERERS

FILES = ("manifest.json", "summary.json", "val_curves.csv")  # the last one where present
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
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


def _record(cls, obj, path):
    """`obj` as record class `cls` (schema SCHEMA), or ImportRefused naming file and key."""
    if obj.get("schema") != SCHEMA:
        raise ImportRefused(
            f"{path}: schema is {obj.get('schema')!r}; the paper imports records of schema "
            f"{SCHEMA} (experiments/record.py): rerun the experiment with this tree"
        )
    try:
        return cls.from_dict(obj, str(path))
    except RecordError as err:
        raise ImportRefused(str(err)) from None


def check_manifest(path, allow_dirty=False):
    """The run's record.Manifest, or ImportRefused saying why the paper cannot print it."""
    obj = _read_json(path)
    if obj is None:
        raise ImportRefused(f"{path} not found: not a run directory of a knlp run target")
    missing = missing_fields(obj)
    if missing:
        raise ImportRefused(
            f"{path}: missing field {', '.join(missing)} "
            "(required by experiments/record.py REQUIRED_FIELDS)"
        )
    manifest = _record(Manifest, obj, path)
    if manifest.git.get("commit") is None:
        raise ImportRefused(
            f"{path}: git.commit is null: the run's code is unknown (not run from a git "
            "checkout); rerun it from one"
        )
    if manifest.git.get("dirty") and not allow_dirty:
        raise ImportRefused(
            f"{path}: git.dirty is true: the run was made from a modified tree; commit and "
            "rerun, or pass --allow-dirty (the paper then marks it 'dirty tree')"
        )
    bad = [run for run, digest in manifest.runs.items() if not _SHA256.match(str(digest))]
    if bad or not manifest.runs:
        raise ImportRefused(
            f"{path}: runs must give every run the sha256 of its inputs (64 hex digits); "
            f"{'got none' if not manifest.runs else 'not one: ' + ', '.join(bad)}"
        )
    if manifest.experiment not in RENDERERS:
        raise ImportRefused(
            f"{path}: experiment {manifest.experiment!r} has no renderer in the paper; "
            f"accepted: {', '.join(RENDERERS)}"
        )
    return manifest


def check_summary(path, manifest):
    """The run's record.Summary: finished, and of the manifest's run and runs."""
    obj = _read_json(path)
    if obj is None:
        raise ImportRefused(f"{path} not found: the run is unfinished (summary.json is written)")
    summary = _record(Summary, obj, path)
    if summary.complete is not True:
        unfinished = [
            f"{r['run']} ({r['status']}{': ' + r['failure'] if r['failure'] else ''})"
            for r in summary.runs
            if r["status"] != "done"
        ]
        raise ImportRefused(
            f"{path}: complete is {json.dumps(summary.complete)}: the run is unfinished; "
            f"not done: {', '.join(unfinished) or 'none listed'}"
        )
    for key in ("experiment", "run_id"):
        if getattr(summary, key) != getattr(manifest, key):
            raise ImportRefused(
                f"{path}: {key} is {getattr(summary, key)!r}, but manifest.json says "
                f"{getattr(manifest, key)!r}"
            )
    runs = {r["run"] for r in summary.runs}
    if runs != set(manifest.runs):
        raise ImportRefused(
            f"{path}: its runs ({', '.join(sorted(runs))}) are not manifest.json's runs "
            f"({', '.join(sorted(manifest.runs))}); reinstall the run"
        )
    return summary


def import_run(run_dir, data_dir, name=None, allow_dirty=False):
    """Copies an installed, finished run into data_dir/<name>; returns (dest, the files
    copied)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ImportRefused(
            f"{run_dir} is not a directory (expected results/<experiment>/<run_id>)"
        )
    manifest = check_manifest(run_dir / "manifest.json", allow_dirty)
    check_summary(run_dir / "summary.json", manifest)
    name = name or manifest.experiment
    if not _NAME.match(str(name)) or name in RESERVED:
        raise ImportRefused(
            f"data set name {name!r} is not accepted: lower-case letters, digits and _, "
            f"starting with a letter, and not {', '.join(RESERVED)}"
        )
    data_dir = Path(data_dir)
    for other in sorted(data_dir.glob("*/manifest.json")):
        theirs = _read_json(other) or {}
        if other.parent.name != name and theirs.get("experiment") == manifest.experiment:
            raise ImportRefused(
                f"{other} already holds a {manifest.experiment} run and the paper prints one "
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
