"""GSM8K (n=200): the stage set's decode cell against its 16-bit reference.

Runs lm-evaluation-harness (`lm_eval`, installed in the serving environment)
through its vLLM backend on the first 200 GSM8K test problems, once per arm:
the reference arm is the cell with QUALITY_REFERENCE's cache dtypes (16-bit K
and V, tools/reproduce/stage_sets.bzl), the test arm the cell itself (K16/V8
by default). Each arm runs in its own process, since vLLM does not give the
GPU back within one. It records both exact-match accuracies and their
difference in points (the gate: within 1.5), with the arms it compared.

Two arms with the same cache dtypes are refused before anything runs: such a
gate compares a cache with itself and passes whatever the cell does.

    python gsm8k.py --cell JSON --out FILE          # both arms and the delta
    python gsm8k.py arm --cell JSON --out FILE      # one arm (what the above runs)
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from experiments.results import atomic_write_text
from tools.reproduce import cell as cell_lib
from tools.reproduce.measure import common

LIMIT = 200


def arms(cell):
    """(reference, test) for `cell`; CellError when the two store the cache alike."""
    return cell_lib.check_arms(cell_lib.with_cache(cell, cell_lib.quality_reference()), cell)


def run_arm(argv):
    """One arm in this process: lm_eval's vLLM backend built from the arm's cell."""
    p = argparse.ArgumentParser(description="one GSM8K arm")
    p.add_argument("--cell", required=True, type=common.cell_arg)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    import lm_eval
    from lm_eval.models.vllm_causallms import VLLM

    kwargs = cell_lib.llm_kwargs(args.cell)
    lm = VLLM(pretrained=kwargs.pop("model"), seed=args.seed, **kwargs)
    result = lm_eval.simple_evaluate(model=lm, tasks=["gsm8k"], limit=LIMIT)
    accuracy = float(result["results"]["gsm8k"]["exact_match,strict-match"]) * 100.0
    atomic_write_text(str(args.out), json.dumps({"accuracy": accuracy}) + "\n")
    return 0


def accuracy(arm, seed, work, name):
    out = Path(work) / f"{name}.json"
    cmd = [sys.executable, __file__, "arm", "--cell", cell_lib.to_json(arm)]
    subprocess.run([*cmd, "--seed", str(seed), "--out", str(out)], check=True)
    return json.loads(out.read_text())["accuracy"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["arm"]:
        return run_arm(argv[1:])
    args = common.parser(__doc__).parse_args(argv)
    try:
        reference, test = arms(args.cell)
    except cell_lib.CellError as err:
        raise SystemExit(f"gsm8k: {err}") from err
    if importlib.util.find_spec("lm_eval") is None:
        raise SystemExit(
            f"lm_eval (lm-evaluation-harness) is not installed in {sys.executable}'s environment; "
            "the gsm8k measurement needs it (it is not in the pinned CUDA lock yet)"
        )
    with tempfile.TemporaryDirectory() as work:
        ref_acc = accuracy(reference, args.seed, work, "reference")
        test_acc = accuracy(test, args.seed, work, "test")
    common.write_records(
        args.out,
        [
            {"metric": "gsm8k_reference_accuracy", "value": ref_acc, "n": LIMIT, "arm": reference},
            {"metric": "gsm8k_cell_accuracy", "value": test_acc, "n": LIMIT, "arm": test},
            {
                "metric": "gsm8k_delta_points",
                "value": abs(test_acc - ref_acc),
                "arms": {"reference": reference, "test": test},
            },
        ],
        args.cell,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
