"""Optional mirrors of the local record: Weights & Biases and trackio.

The local metrics.jsonl is the canonical record; a tracker only copies it.
`make_tracker("none" | "wandb" | "trackio", ...)` returns an object with
`log(dict, step)` and `finish()`. W&B without WANDB_API_KEY (and not in
offline mode) falls back to local-only and says so in one line; trackio is
not in the lock, so a missing package gives one line too. Keys are read by
the libraries from the environment and never logged or written.
"""

from __future__ import annotations

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
        self.run.log(data)

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
        if not os.environ.get("WANDB_API_KEY") and mode not in ("offline", "disabled"):
            say(
                "tracker: no WANDB_API_KEY in the environment; recording locally only "
                "(set WANDB_MODE=offline to keep an offline W&B run)"
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
