"""The one reader of .bzl files from Python: a literals-only file's assignments as values.

A .bzl file that both Bazel and Python read (experiments/ablations/steps.bzl,
tools/reproduce/stage_sets.bzl) holds only a docstring and `NAME = <literal>`
assignments, so Starlark loads it and this module evaluates the same text.
"""

import ast
from pathlib import Path


def load_bzl(path):
    """The top-level assignments of a literals-only .bzl file, as Python values.

    Values may be literals or names assigned earlier in the same file; anything
    else (calls, arithmetic) is refused so the file stays readable by both.
    """
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    names = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstring
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            raise ValueError(f"{path}:{node.lineno}: only NAME = <literal> assignments are allowed")
        for sub in ast.walk(node.value):
            allowed = (ast.Dict, ast.List, ast.Tuple, ast.Constant, ast.Load, ast.UnaryOp)
            if isinstance(sub, ast.Name):
                if sub.id not in names:
                    raise ValueError(f"{path}:{sub.lineno}: {sub.id} is not defined above")
            elif not isinstance(sub, allowed + (ast.USub,)):
                raise ValueError(f"{path}:{sub.lineno}: {type(sub).__name__} is not a literal")
        code = compile(ast.Expression(node.value), str(path), "eval")
        names[node.targets[0].id] = eval(code, {"__builtins__": {}}, dict(names))  # noqa: S307
    return names
