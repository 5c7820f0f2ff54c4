"""Optional mirrors of the local record: Weights & Biases and trackio.

The local metrics.jsonl is the canonical record; a tracker only copies it.
The installer (experiments/install.py) mirrors each installed run once, after
it was built, with `mirror_runs` (the tracker is not an input of any run, so
choosing one retrains nothing). `make_tracker("none" | "wandb" | "trackio",
...)` returns an object with `log(dict, step)` and `finish()`. W&B without a
key (WANDB_API_KEY, or W&B's own netrc entry for api.wandb.ai, as `wandb
login` writes it) and not in offline mode falls back to local-only and says
so in one line; trackio is not in the lock, so a missing package gives one
line too. Keys are read by the libraries themselves and never logged,
written, or passed to a build action.
"""

from __future__ import annotations

import netrc
import os
import sys

TRACKERS = ("none", "wandb", "trackio")

# Config keys never sent to a tracker, whatever their nesting.
_SECRET_MARKERS = ("key", "token", "secret", "password")


def _scrub(obj):
    if isinstance(obj, dict):
        return {
            k: _scrub(v)
            for k, v in obj.items()
            if not any(m in str(k).lower() for m in _SECRET_MARKERS)
        }
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


class NullTracker:
    name = "none"

    def log(self, data: dict, step: int | None = None) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbTracker:
    name = "wandb"

    def __init__(
        self, project: str, run_name: str, config: dict, group: str | None, directory: str
    ):
        import wandb

        self._wandb = wandb
        self.run = wandb.init(
            project=project,
            name=run_name,
            group=group,
            config=_scrub(config),
            dir=directory,
            reinit="finish_previous",
        )

    def log(self, data: dict, step: int | None = None) -> None:
        self.run.log(data, step=step)

    def finish(self) -> None:
        self.run.finish()


class TrackioTracker:
    name = "trackio"

    def __init__(self, project: str, run_name: str, config: dict):
        import trackio

        self._t = trackio
        trackio.init(project=project, name=run_name, config=_scrub(config))

    def log(self, data: dict, step: int | None = None) -> None:
        self._t.log(data)

    def finish(self) -> None:
        self._t.finish()


def make_tracker(
    kind: str,
    project: str,
    run_name: str,
    config: dict,
    directory: str,
    group: str | None = None,
    say=None,
):
    """Returns a tracker; falls back to NullTracker with one line when it cannot run."""
    say = say or (lambda msg: print(msg, file=sys.stderr))
    if kind not in TRACKERS:
        raise ValueError(f"tracker {kind!r}: accepted: {', '.join(TRACKERS)}")
    if kind == "none":
        return NullTracker()
    if kind == "wandb":
        mode = os.environ.get("WANDB_MODE", "")
        if not wandb_key_available() and mode not in ("offline", "disabled"):
            say(
                "tracker: no W&B key (WANDB_API_KEY, or `wandb login`'s netrc entry); "
                "recording locally only (set WANDB_MODE=offline to keep an offline W&B run)"
            )
            return NullTracker()
        try:
            os.makedirs(directory, exist_ok=True)
            return WandbTracker(project, run_name, config, group, directory)
        except ImportError:
            say("tracker: wandb is not installed; recording locally only")
            return NullTracker()
    try:
        return TrackioTracker(project, run_name, config)
    except ImportError:
        say("tracker: trackio is not installed (it is not in the lock); recording locally only")
        return NullTracker()


WANDB_HOST = "api.wandb.ai"


def wandb_key_available(environ=None, netrc_path=None) -> bool:
    """Whether W&B's client will find a key: WANDB_API_KEY, or its netrc entry."""
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_API_KEY"):
        return True
    path = netrc_path or environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(WANDB_HOST) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def mirror_runs(kind: str, experiment: str, run_dir: str, say=None) -> list[str]:
    """Logs every installed run of `run_dir` (runs/<run>/metrics.jsonl) to the tracker
    `kind`, once: tracking/<kind>.json lists the runs already sent. Returns the runs sent."""
    if kind == "none":
        return []
    from experiments.results import atomic_write_json, read_json, read_jsonl

    done_path = os.path.join(run_dir, "tracking", f"{kind}.json")
    sent = read_json(done_path, {"runs": []})["runs"]
    manifest = read_json(os.path.join(run_dir, "manifest.json"), {})
    run_id = os.path.basename(run_dir)
    new = []
    for run in sorted(os.listdir(os.path.join(run_dir, "runs"))):
        if run in sent:
            continue
        result = read_json(os.path.join(run_dir, "runs", run, "result.json"), {})
        tracker = make_tracker(
            kind,
            project=f"knlp-{experiment}",
            run_name=f"{run_id}/{run}",
            config={"manifest": manifest.get("config", {}), "built": result.get("built", {})},
            directory=os.path.join(run_dir, "tracking"),
            group=run_id,
            say=say,
        )
        if isinstance(tracker, NullTracker):
            return new
        for rec in read_jsonl(os.path.join(run_dir, "runs", run, "metrics.jsonl")):
            tracker.log(
                {
                    f"{rec.get('kind', 'train')}/{k}": v
                    for k, v in rec.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                },
                step=rec.get("iter"),
            )
        tracker.finish()
        new.append(run)
        atomic_write_json(done_path, {"runs": sent + new})
    return new
