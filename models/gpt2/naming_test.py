"""The naming convention of models/gpt2 (zoo.CONVENTION), checked on every file here.

A class file under another name fails this test, with the convention in the
message, rather than some other test that happens to import it.
"""

from pathlib import Path

import pytest

from models.gpt2 import zoo

PACKAGE_DIR = Path("models/gpt2")  # the runfiles under bazel test, the checkout under pytest


def test_every_file_follows_the_convention():
    files = sorted(PACKAGE_DIR.glob("*.py"))
    assert any(f.name == "gpt2.py" for f in files), f"no class files under {PACKAGE_DIR.resolve()}"
    assert zoo.naming_problems(files) == []


def test_a_misnamed_class_file_is_reported(tmp_path):
    notes = tmp_path / "scratch_notes.py"
    notes.write_text(
        "import not_a_module\n\n\nclass GPT2_NEW:\n    pass\n\n\nclass Helper:\n    pass\n"
    )
    (problem,) = zoo.naming_problems([notes])
    assert problem.startswith("scratch_notes.py:4: class GPT2_NEW breaks the naming convention")
    assert zoo.CONVENTION in problem and "gpt2_new.py" in problem


def test_a_helper_file_without_classes_is_fine(tmp_path):
    notes = tmp_path / "scratch_notes.py"
    notes.write_text("import not_a_module\n\nVALUE = not_a_module.x\n")
    assert zoo.naming_problems([notes]) == []


def test_discovery_sees_only_class_modules():
    assert all(zoo.is_class_module(m) for m in zoo.module_names())
    assert "gpt2" in zoo.module_names()
    assert not zoo.is_class_module("scratch_notes") and not zoo.is_class_module("gpt2_test")


class GPT2_NO_CONFIG:
    def __init__(self, cfg):
        pass

    def get_num_params(self):
        return 0


class GPT2_NO_ARGS(GPT2_NO_CONFIG):
    def __init__(self):
        pass


class GPT2_NO_SIGNATURE(GPT2_NO_CONFIG):
    __init__ = max  # a builtin: inspect cannot read its signature


def test_a_model_class_takes_config_first():
    from models.gpt2.gpt2 import GPT2

    assert zoo.is_model_class(GPT2)
    for cls in (GPT2_NO_CONFIG, GPT2_NO_ARGS, GPT2_NO_SIGNATURE):
        assert not zoo.is_model_class(cls), cls.__name__
    assert zoo.discover()["GPT2"] is GPT2


def test_a_name_in_the_wrong_case_lists_the_known_classes():
    # gpt2.py exists, but holds no class "Gpt2": the fallback names the known ones.
    with pytest.raises(ValueError, match="unknown model class 'Gpt2'; known: GPT2, "):
        zoo.get_class("Gpt2")


class GPT2_NO_PARAMS:
    def __init__(self, config):
        pass


def test_a_model_class_counts_its_parameters():
    assert not zoo.is_model_class(GPT2_NO_PARAMS)


def test_a_file_that_does_not_parse_is_named(tmp_path):
    broken = tmp_path / "gpt2_broken.py"
    broken.write_text("class GPT2_BROKEN(:\n")
    with pytest.raises(SyntaxError) as e:
        zoo.naming_problems([broken])
    assert e.value.filename == str(broken)
