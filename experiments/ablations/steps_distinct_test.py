"""Steps the registry declares different really build different models.

In the old tree 12 of 19 steps built the same model because their options
never reached it. Here every step is built at its real size on the meta
device and fingerprinted by class, parameter count and module structure
(repr, which shows every width and every mechanism's settings); two steps
whose model options differ must differ in the fingerprint, and two steps with
the same model must differ in what they train with (optimizer or pruning).

A step whose declaration is invalid is left out of the comparison: its own
case of `dryrun_test` fails and names it, and this test keeps checking the
others, so one broken step fails exactly one step's dry-run case.
"""

import itertools

import torch

from experiments.ablations import registry


def fingerprint(step):
    with torch.device("meta"):
        model = registry.build_model(step)
    return (type(model).__name__, model.get_num_params(), repr(model))


def buildable_steps():
    """(steps, fingerprints) of every step that is declared validly."""
    steps, prints = [], {}
    for i in registry.step_ids():
        try:
            s = registry.step(i)
            prints[s.id] = fingerprint(s)
        except registry.StepError:
            continue
        steps.append(s)
    return steps, prints


def test_declared_differences_reach_the_model():
    steps, prints = buildable_steps()
    same = []
    for a, b in itertools.combinations(steps, 2):
        declared_same = (a.class_name, a.options) == (b.class_name, b.options)
        built_same = prints[a.id] == prints[b.id]
        assert declared_same == built_same, (
            f"steps {a.id} and {b.id}: declared {'same' if declared_same else 'different'} "
            f"models but built {'the same' if built_same else 'different'} ones"
        )
        if built_same:
            assert (a.optimizer, a.pruning) != (
                b.optimizer,
                b.pruning,
            ), f"steps {a.id} and {b.id} are the same experiment"
            same.append((a.id, b.id))
    # baseline and baseline + pruning share their model
    ids = {s.id for s in steps}
    assert same == [pair for pair in [(0, 1)] if set(pair) <= ids]
