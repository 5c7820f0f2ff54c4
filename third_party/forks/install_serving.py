"""Install the fork wheels into a Python environment, in the order that works.

    bazel run --config=cuda //third_party/forks:install_serving -- --python /path/to/venv/bin/python

The order is the BUILD file's (`install_serving` args): FlashInfer, then vLLM
with its dependencies (which replaces FlashInfer with PyPI's), then FlashInfer
again without dependencies, then LMCache. Each step is `pip install` of one
wheel built by //third_party/forks; `reinstall` steps use
`--force-reinstall --no-deps`.
"""

import argparse
import subprocess
import sys
from pathlib import Path

MODES = {
    "install": ["install"],
    "reinstall": ["install", "--force-reinstall", "--no-deps"],
}


def parse_step(spec):
    mode, _, wheel_dir = spec.partition("=")
    if mode not in MODES or not wheel_dir:
        raise SystemExit(f"--step {spec!r}: expected MODE=DIR with MODE one of {sorted(MODES)}")
    wheels = sorted(Path(wheel_dir).glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"--step {spec!r}: expected one wheel in {wheel_dir}, found {wheels}")
    return mode, wheels[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="interpreter of the target environment")
    parser.add_argument("--step", action="append", default=[], help="install=DIR or reinstall=DIR")
    parser.add_argument("--dry-run", action="store_true", help="print the pip commands only")
    args = parser.parse_args(argv)
    for mode, wheel in map(parse_step, args.step):
        cmd = [args.python, "-m", "pip", *MODES[mode], str(wheel.resolve())]
        print(" ".join(cmd), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
