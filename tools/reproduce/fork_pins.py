"""The stage set's view of the fork pins (third_party/forks): which forks, and are they resolved.

Kept apart from stages.py so that no file here imports both `third_party` and
`tools` (ruff's import sorting classifies `third_party` differently inside
the lint sandbox, where that directory is absent, than in the workspace).
"""

from third_party.forks import pins


def load_lock():
    return pins.load_lock()


def pair_forks(stage_set_spec):
    forks = pins.load_forks()
    return sorted(n for n, f in forks.items() if f["pair"] == stage_set_spec["pair"])


def fork_pins(stage_set_spec, lock=None):
    """{fork: what the lock pins} for the stage set's pin set, with whether it is resolved."""
    lock = lock or pins.load_lock()
    return {
        name: {
            "ref": lock["forks"][name]["ref"],
            "commit": lock["forks"][name]["commit"],
            "commit_prefix": lock["forks"][name]["commit_prefix"],
            "resolved": pins.resolved(lock, name),
        }
        for name in pair_forks(stage_set_spec)
    }
