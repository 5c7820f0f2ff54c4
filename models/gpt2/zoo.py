"""Discovery by convention: every GPT-2 class in this package, with no registry.

A model class is any class defined in a module of models/gpt2 whose name
starts with `GPT2`, whose constructor takes the config as its first argument,
and which has `get_num_params()`. `discover()` imports every module here and
returns those classes by name; `get_class(name)` first tries the module named
after the class (GPT2_MLA_KV lives in gpt2_mla_kv.py), which is all a Bazel
target that depends on one class file has in its runfiles.
"""

import importlib
import inspect
from pathlib import Path

PACKAGE = "models.gpt2"
PACKAGE_DIR = Path(__file__).resolve().parent


def is_model_class(obj):
    """True if `obj` follows the convention (see the module docstring)."""
    if not (inspect.isclass(obj) and obj.__name__.startswith("GPT2")):
        return False
    if not callable(getattr(obj, "get_num_params", None)):
        return False
    try:
        params = list(inspect.signature(obj.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0].name == "config"


def module_names():
    """The importable modules of this package, tests excluded."""
    return sorted(
        p.stem for p in PACKAGE_DIR.glob("*.py") if not p.stem.endswith("_test") and p.stem != "zoo"
    )


def discover():
    """{class name: class} for every model class found in models/gpt2."""
    found = {}
    for name in module_names():
        module = importlib.import_module(f"{PACKAGE}.{name}")
        for attr, obj in vars(module).items():
            if is_model_class(obj) and obj.__module__ == module.__name__:
                if attr in found and found[attr] is not obj:
                    raise ValueError(f"two model classes named {attr} in models/gpt2")
                found[attr] = obj
    return dict(sorted(found.items()))


def module_of(class_name):
    """The module a class lives in by convention: its name in lower case."""
    return class_name.lower()


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
