"""The naming convention of models/gpt2 (zoo.CONVENTION), checked on every file here.

A class file under another name fails this test, with the convention in the
message, rather than some other test that happens to import it.
"""

from pathlib import Path

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
