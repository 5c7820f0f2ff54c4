"""ARCHITECTURE.md's layer table, the root's package_groups and every BUILD's visibility agree.

The table says which layer each package is in and which layers it may depend
on. From it follows what each package's visibility must be: the groups of
the layers allowed to depend on it. A package may narrow that to its own
subtree (//paper:__subpackages__); it may never be //visibility:public, and
only the build infrastructure named in ARCHITECTURE.md may use //:workspace.
"""

import re
from pathlib import Path

ROOT = Path(".")  # the runfiles root under bazel test, the checkout under pytest
INFRA = ("//tools/bazel", "//containers/platforms")
GROUP = re.compile(r"package_group\(\s*name\s*=\s*\"(\w+)\",\s*packages\s*=\s*\[([^\]]*)\]", re.S)
VISIBILITY = re.compile(r"visibility\s*=\s*\[([^\]]*)\]")
LABEL = re.compile(r"\"([^\"]+)\"")


def layer_table(text):
    """{layer: (package patterns, layers it may depend on)} from the Layers table."""
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("layer", "") or set(cells[0]) <= {"-"}:
            continue
        packages = re.findall(r"`(//[^`]+)`", cells[1])
        deps = [d.strip() for d in cells[2].split(",")]
        layers[cells[0]] = (packages, deps)
    return layers


def package_groups(text):
    return {name: LABEL.findall(body) for name, body in GROUP.findall(text)}


def build_files(pattern):
    """The BUILD files of the packages a `//dir/...` pattern covers."""
    top = ROOT / pattern.removeprefix("//").removesuffix("/...")
    return sorted(top.rglob("BUILD.bazel"))


def package_of(build_file):
    return "//" + build_file.parent.as_posix().removeprefix("./")


def visibility_problems(layers, build_text_of):
    """One line per visibility that the table does not allow."""
    problems = []
    for layer, (patterns, _) in layers.items():
        allowed = sorted(f"//:{other}" for other, (_, deps) in layers.items() if layer in deps)
        for pattern in patterns:
            own = pattern.removesuffix("/...")
            files = build_files(pattern)
            if not files:
                problems.append(f"{pattern}: no BUILD.bazel found for layer {layer}")
            for f in files:
                pkg = package_of(f)
                for body in VISIBILITY.findall(build_text_of(f)):
                    for label in LABEL.findall(body):
                        in_layer = label.startswith(own + ":") or label.startswith(own + "/")
                        infra = label == "//:workspace" and pkg in INFRA
                        if label not in allowed and not in_layer and not infra:
                            problems.append(
                                f"{f}: visibility {label} in layer {layer}; "
                                f"allowed: {', '.join(allowed)} or {own}'s own packages"
                            )
    return problems


def default_visibility_problems(layers, build_text_of):
    """A package below the top layer must open its default visibility to exactly its users."""
    problems = []
    for layer, (patterns, _) in layers.items():
        allowed = sorted(f"//:{other}" for other, (_, deps) in layers.items() if layer in deps)
        for pattern in patterns:
            for f in build_files(pattern):
                m = re.search(r"default_visibility\s*=\s*\[([^\]]*)\]", build_text_of(f))
                if m and package_of(f) not in INFRA and "__" not in m.group(1):
                    got = sorted(LABEL.findall(m.group(1)))
                    if got != allowed:
                        problems.append(
                            f"{f}: default_visibility {got}, ARCHITECTURE.md: {allowed}"
                        )
    return problems


def test_package_groups_are_the_layers():
    layers = layer_table((ROOT / "ARCHITECTURE.md").read_text())
    assert set(layers) == {"core", "runs", "top"}, layers
    groups = package_groups((ROOT / "BUILD.bazel").read_text())
    for layer, (patterns, deps) in layers.items():
        assert sorted(groups.get(layer, [])) == sorted(patterns), f"//:{layer} vs ARCHITECTURE.md"
        assert layer in deps and set(deps) <= set(layers), f"{layer} may depend on {deps}"


def test_build_visibility_follows_the_layers():
    layers = layer_table((ROOT / "ARCHITECTURE.md").read_text())

    def read(f):
        return f.read_text()

    assert visibility_problems(layers, read) == []
    assert default_visibility_problems(layers, read) == []


def test_infrastructure_is_named_in_the_doc():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    for pkg in INFRA:
        assert f"`{pkg}`" in text


def test_a_visibility_the_table_does_not_allow_is_reported():
    layers = {
        "core": (["//models/..."], ["core"]),
        "runs": (["//experiments/..."], ["core", "runs"]),
    }
    texts = {
        "models": 'package(default_visibility = ["//visibility:public"])',
        "experiments": 'package(default_visibility = ["//:core", "//:runs"])',
    }

    def read(f):
        return texts.get(f.parts[0], "")

    problems = visibility_problems(layers, read)
    assert any("visibility //visibility:public in layer core" in p for p in problems), problems
    assert any("visibility //:core in layer runs" in p for p in problems), problems
    assert default_visibility_problems(layers, read), "a widened default is not reported"
