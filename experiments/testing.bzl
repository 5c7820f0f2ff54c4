"""`declared_steps`: every experiment's steps on every profile, as experiments.bzl lists them.

A test-only JSON file, so experiments/testing_test.py can check that the test
fixtures (experiments/testing.py `steps`) list exactly the steps and
declarations that Bazel's run actions are built from.
"""

load(":experiments.bzl", "EXPERIMENTS")
load(":profiles.bzl", "PROFILES")

def _declared_steps_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.write(out, json.encode({
        experiment: {profile: decl.steps(PROFILES[profile]) for profile in PROFILES}
        for experiment, decl in EXPERIMENTS.items()
    }))
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

declared_steps = rule(
    implementation = _declared_steps_impl,
    doc = "Writes <name>.json: experiment -> profile -> its steps (experiments/experiments.bzl).",
)
