"""The registry (steps.bzl) and step.py, which turns one step's declaration into a Step."""

import pytest

from experiments.ablations import dryrun, registry
from experiments.ablations import step as step_lib
from experiments.ablations.registry import STEPS_BZL, Registry, StepError, load_bzl
from models.gpt2 import zoo


def test_nineteen_steps_and_ten_prefixes():
    assert registry.step_ids() == list(range(19))
    assert list(registry.get().variants) == [
        "B",
        "RA",
        "RALEARN",
        "MLA",
        "RAMLA",
        "RAMLAKV",
        "RAMLAKVM",
        "MLAKV",
        "MLAKV2",
        "MLAKV2M",
    ]


def test_unknown_step_lists_valid_ids():
    with pytest.raises(StepError, match=r"unknown RATIO step 19; valid step ids: 0, 1, .*, 18"):
        registry.step(19)
    with pytest.raises(StepError, match="valid step ids"):
        registry.step("five")


def test_every_variant_names_a_discovered_class():
    classes = zoo.discover()
    for prefix, spec in registry.get().variants.items():
        assert spec["class"] in classes, prefix


def write_registry(tmp_path, edit):
    data = load_bzl(STEPS_BZL)
    edit(data["RATIO_STEPS"])
    path = tmp_path / "steps.bzl"
    path.write_text("".join(f"{name} = {value!r}\n" for name, value in data.items()))
    return Registry(path)


BREAKAGES = {
    "misspelled option": lambda steps: steps[3]["options"].update(mlp_ration=4.25),
    "option the class ignores": lambda steps: steps[3]["options"].update(ra_alpha=0.5),
    "bad value": lambda steps: steps[3]["options"].update(ract=True, ract_stat="median"),
    "unknown variant": lambda steps: steps[3].update(variant="RAMLAKVX"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_breaking_one_step_fails_exactly_that_step(tmp_path, breakage):
    reg = write_registry(tmp_path, BREAKAGES[breakage])
    failed = []
    for i in reg.step_ids():
        try:
            reg.build_model(i, dims="tiny")
        except StepError as e:
            assert str(e).startswith("RATIO step 3 ") or "RAMLAKVX" in str(e)
            failed.append(i)
    assert failed == [3]
    with pytest.raises(StepError, match="3"):  # and the step's dry-run test fails on it
        dryrun.dry_run_step(reg, 3)


def test_bzl_must_hold_literals(tmp_path):
    path = tmp_path / "bad.bzl"
    path.write_text('X = {"a": 1}\nY = len(X)\n')
    with pytest.raises(ValueError, match="Call is not a literal"):
        load_bzl(path)


def valid_step_ids():
    """Steps whose declaration builds; an invalid one fails its own dry-run target."""
    valid = set()
    for i in registry.step_ids():
        try:
            registry.build_model(i, dims="tiny")
        except registry.StepError:
            continue
        valid.add(i)
    return valid


def test_readme_step_table_is_generated_from_the_registry():
    readme = (STEPS_BZL.parent / "README.md").read_text()
    begin, end = "<!-- steps:begin -->\n", "<!-- steps:end -->"
    valid = valid_step_ids()
    rows = readme[readme.index(begin) + len(begin) : readme.index(end)].splitlines()
    table = "".join(
        row + "\n"
        for row in rows
        if not row.startswith("| ")
        or not row.split("|")[1].strip().isdigit()
        or int(row.split("|")[1]) in valid
    )
    assert table == registry.markdown_table(only=valid), (
        "README step table is stale; regenerate with "
        "`bazel run //experiments/ablations:list -- --steps-table`"
    )


def test_a_runs_declaration_builds_the_registrys_step_or_names_what_is_wrong():
    """A run reads only its step's three parts (step.py); they give the registry's Step."""
    reg = registry.get()
    spec, variant, base = reg.steps[8], reg.variants["MLA"], reg.base
    built = step_lib.Step.from_parts(8, spec, variant, base)
    assert built == reg.step(8)
    assert built.options == {**base["options"], **variant["options"], **spec["options"]}
    ra = reg.variants["RA"]
    plain = step_lib.Step.from_parts(-1, registry.variant_spec("RA", ra), ra, base)
    assert plain == reg.variant_step("RA")
    assert plain.options == {"dropout": 0.1, "ra_learned": False}  # base, then the prefix's

    def refused(spec, message):
        with pytest.raises(StepError, match=message):
            s = step_lib.Step.from_parts(8, spec, variant, base)
            step_lib.build_model(s, step_lib.config(s, "tiny"))

    refused(
        dict(spec, optimiser="adamw"), r"^step 8 \(MLA\) is invalid: unknown fields \['optimiser'\]"
    )
    refused(dict(spec, pruning={"targets": 0.5}), r"unknown pruning keys \['targets'\]; accepted")
    refused(dict(spec, options={"d_latnt": 64}), "GPT2Config has no option 'd_latnt'")
    refused(dict(spec, options={"ra_alpha": 0.5}), "GPT2_MLA does not implement 'ra'")
    with pytest.raises(ValueError, match="unknown dims 'huge'; accepted: real, tiny, a dict of"):
        step_lib.config(built, "huge")
