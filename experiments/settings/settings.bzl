"""Build settings: the knobs of a run, checked when Bazel analyses them.

Each knob is a Starlark build setting of //experiments/settings with a short
alias in .bazelrc (`--profile=h100`, `--steps=0,8`, `--seeds=3`, `--iters=20`,
`--time=30m`, `--seed=0`, `--tracker=wandb`), read by the experiment rule
(experiments/defs.bzl). A value that is not accepted fails at analysis with
the value and what is accepted.
"""

SettingInfo = provider(
    doc = "The value of one knob of a run.",
    fields = {"value": "the setting's value"},
)

def _string_setting_impl(ctx):
    value = ctx.build_setting_value
    if ctx.attr.values and value not in ctx.attr.values:
        fail("knlp: --%s=%s is not accepted; accepted: %s" % (ctx.label.name, value, ", ".join(ctx.attr.values)))
    return [SettingInfo(value = value)]

string_setting = rule(
    implementation = _string_setting_impl,
    build_setting = config.string(flag = True),
    attrs = {"values": attr.string_list(doc = "the accepted values; empty: any")},
    doc = "A string knob; `values` lists the accepted ones.",
)

def _int_setting_impl(ctx):
    value = ctx.build_setting_value
    if value < ctx.attr.minimum:
        fail("knlp: --%s=%d is not accepted; accepted: an integer >= %d" % (ctx.label.name, value, ctx.attr.minimum))
    return [SettingInfo(value = value)]

int_setting = rule(
    implementation = _int_setting_impl,
    build_setting = config.int(flag = True),
    attrs = {"minimum": attr.int(doc = "the smallest accepted value")},
    doc = "An integer knob of at least `minimum`.",
)

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

def duration_seconds(text):
    """The seconds a wall-time budget names.

    Args:
      text: "90", "90s", "30m", "2h" or "1d".

    Returns:
      The seconds as an int, or None when `text` is not a duration.
    """
    unit = text[-1:] if text[-1:] in "smhd" else ""
    number = text[:len(text) - len(unit)]
    if not number.isdigit() or int(number) <= 0:
        return None
    return int(number) * _UNITS[unit]

def _duration_setting_impl(ctx):
    value = ctx.build_setting_value
    if value and duration_seconds(value) == None:
        fail("knlp: --%s=%s is not accepted; accepted: empty (no budget) or a positive whole number of seconds, or of minutes, hours or days with m, h or d (90, 30m, 2h)" % (ctx.label.name, value))
    return [SettingInfo(value = value)]

duration_setting = rule(
    implementation = _duration_setting_impl,
    build_setting = config.string(flag = True),
    doc = "A wall-time budget: empty, or 90, 90s, 30m, 2h, 1d.",
)
