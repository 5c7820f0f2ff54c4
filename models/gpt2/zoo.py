"""Discovery by convention: every GPT-2 class in this package, with no registry.

The naming convention, stated once here (the BUILD glob `gpt2*.py` and
experiments/BUILD.bazel's `.lower()` of a run program's class follow it):

- a model class lives in its own module of models/gpt2 named after it in lower
  case (GPT2_MLA_KV in gpt2_mla_kv.py), so every class module matches `gpt2*.py`;
- its name is `GPT2` and upper-case parts (`CLASS_NAME`), its constructor
  takes the config as its first argument, and it has `get_num_params()`.

`discover()` imports the class modules that the running target declares: it
lists the package's directories as Python sees them (a Bazel target's
runfiles, or the checkout under plain pytest) and never resolves a path back
into the source tree, so an undeclared file changes nothing. `get_class(name)`
first tries the module named after the class, which is all a target that
depends on one class file has. `naming_problems()` is the lint check
(//models/gpt2:naming_test) that flags a class file breaking the convention.
"""

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

PACKAGE = "models.gpt2"
CLASS_PREFIX = "GPT2"
# How a model class is named: GPT2, then upper-case parts (GPT2_MLA_KV).
CLASS_NAME = re.compile(r"^GPT2(_[A-Z0-9]+)*$")
CONVENTION = (
    "a GPT-2 model class lives in models/gpt2/<class name in lower case>.py "
    "(GPT2_MLA_KV in gpt2_mla_kv.py)"
)


def is_model_class(obj):
    """True if `obj` follows the convention (see the module docstring)."""
    if not (inspect.isclass(obj) and obj.__name__.startswith(CLASS_PREFIX)):
        return False
    if not callable(getattr(obj, "get_num_params", None)):
        return False
    try:
        params = list(inspect.signature(obj.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0].name == "config"


def module_of(class_name):
    """The module a class lives in by convention: its name in lower case."""
    return class_name.lower()


def is_class_module(module_name):
    """True if a module of this package may hold a model class: `gpt2*`, not a test."""
    return module_name.startswith(CLASS_PREFIX.lower()) and not module_name.endswith("_test")


def module_names():
    """The class modules the running target has, from the package's import path."""
    package = importlib.import_module(PACKAGE)
    return sorted(
        {m.name for m in pkgutil.iter_modules(package.__path__) if is_class_module(m.name)}
    )


def discover():
    """{class name: class} for every model class the running target declares."""
    found = {}
    for name in module_names():
        module = importlib.import_module(f"{PACKAGE}.{name}")
        for attr, obj in vars(module).items():
            if is_model_class(obj) and obj.__module__ == module.__name__:
                if attr in found and found[attr] is not obj:
                    raise ValueError(f"two model classes named {attr} in models/gpt2")
                found[attr] = obj
    return dict(sorted(found.items()))


def get_class(name):
    """The model class called `name`; an unknown name lists the known ones."""
    try:
        module = importlib.import_module(f"{PACKAGE}.{module_of(name)}")
        obj = getattr(module, name, None)
        if is_model_class(obj):
            return obj
    except ModuleNotFoundError:
        pass
    classes = discover()
    if name not in classes:
        raise ValueError(f"unknown model class {name!r}; known: {', '.join(classes)}")
    return classes[name]


def naming_problems(paths):
    """One line per class in `paths` (Python files) that breaks the convention.

    Read with `ast`, never imported: a file that does not import still gets
    its line, and no other test depends on it.
    """
    problems = []
    for path in map(Path, paths):
        if path.stem.endswith("_test"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and CLASS_NAME.match(node.name):
                if path.stem != module_of(node.name):
                    problems.append(
                        f"{path.name}:{node.lineno}: class {node.name} breaks the naming "
                        f"convention, {CONVENTION}: move it to {module_of(node.name)}.py"
                    )
    return problems
