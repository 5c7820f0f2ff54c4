"""`experiment`: an experiment's results as build outputs, and the target that installs them.

    experiment(name = "gpt2_ratio_ablation")

declares `//experiments:gpt2_ratio_ablation`, which `bazel run` builds and
then runs. At analysis it reads the run's settings (experiments/settings/:
--profile, --steps, --seeds, --seed, --iters, --time, --tracker), lists the
experiment's steps for the profile (experiments/experiments.bzl) and declares:

  * one action per run (step x seed), mnemonic `TrainRun` (or `MeasureRun`):
    experiments/run_step.py in the step's own program (experiments/BUILD.bazel
    `run_*`), whose inputs are that program (the step's model class and what it
    imports, pruning, the trainer), the dataset's files, the lock's
    venv_info.json and the run's spec.json (the step's declaration, the
    profile's entry, the overrides). Its outputs, under
    <name>/<profile>[-<overrides>]/<run>/: metrics.jsonl, log.txt, model.pt
    and result.json (log.txt and result.json for a measurement). A GPU
    profile's run is an action of that GPU's exec group
    (containers/platforms/pools.bzl), so its platform names the GPU target
    (`gpu=h100`) and a remote engine sends it only to that pool; a cpu-profile
    run asks for no platform and goes where every other action goes;
  * one `Report` action: experiments/report.py over every run's result, which
    writes report/ (summary body, summary.json, val_curves.csv, plots/);
  * the executable: experiments/install.py, which copies the report and the
    runs into results/<name>/<run_id>/ of the checkout, writes manifest.json
    and prints the verdict table.

A changed input retrains exactly the runs that read it; an unchanged run is
never retrained, on any machine that shares the cache. `fixed` pins settings
for a target whatever the flags say (the gate's tiny experiment).
"""

load("//containers/platforms:pools.bzl", "gpu_exec_group", "gpu_exec_groups")
load("//data:datasets.bzl", "BUILT", "IN_VENV", "PREPARED")
load("//experiments:profiles.bzl", "PROFILES")
load("//experiments/settings:settings.bzl", "SettingInfo", "duration_seconds")
load(":experiments.bzl", "EXPERIMENTS", "TRAINING_KINDS", "experiment_reference", "program_keys", "program_label")

# What a run's action writes, by whether its kind trains.
TRAIN_OUTPUTS = ["metrics.jsonl", "log.txt", "model.pt", "result.json"]
MEASURE_OUTPUTS = ["log.txt", "result.json"]
_SETTINGS = ["profile", "steps", "seeds", "seed", "iters", "time", "tracker"]
_DEFAULTS = {"steps": "all", "seeds": 1, "seed": 1337, "iters": 0, "time": "", "tracker": "none"}

# The run record's schema (experiments/record.py SCHEMA), which spec.json carries.
RECORD_SCHEMA = 3

def dataset_label(name):
    """The files of a dataset (data/datasets.bzl): built, or prepared by hand."""
    return BUILT.get(name) or "@knlp_prepared//:" + name

def _settings(ctx):
    values = {s: getattr(ctx.attr, "_" + s)[SettingInfo].value for s in _SETTINGS}
    for key, value in ctx.attr.fixed.items():
        if key not in _SETTINGS:
            fail("knlp: %s: fixed setting %s is not a setting; accepted: %s" % (ctx.label, key, ", ".join(_SETTINGS)))
        values[key] = int(value) if key in ("seeds", "seed", "iters") else value
    if values["profile"] not in PROFILES:
        fail("knlp: --profile=%s is not accepted; accepted: %s" % (values["profile"], ", ".join(PROFILES)))
    if values["time"] and duration_seconds(values["time"]) == None:
        fail("knlp: --time=%s is not a duration (90, 30m, 2h)" % values["time"])
    return struct(**values)

def _matches(pattern, name):
    """`pattern` with `*` as any characters matches `name`."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == name
    if not name.startswith(parts[0]) or not name.endswith(parts[-1]):
        return False
    pos = len(parts[0])
    for part in parts[1:-1]:
        found = name.find(part, pos)
        if found < 0:
            return False
        pos = found + len(part)
    return pos <= len(name) - len(parts[-1])

def select_steps(steps, text, experiment):
    """The steps --steps names, in the order given.

    Args:
      steps: the experiment's steps (experiments/experiments.bzl).
      text: the --steps value: "all", or names, aliases and `*` patterns, comma-separated.
      experiment: the experiment's name, for the error.

    Returns:
      The chosen steps; "all" gives every step in declared order.
    """
    if text in ("", "all"):
        return steps
    chosen = []
    for want in [w.strip() for w in text.split(",") if w.strip()]:
        hits = [s for s in steps if _matches(want, s.name) or want in s.aliases]
        if not hits:
            fail("knlp: --steps=%s: %s names no step of %s; accepted: all, or a comma-separated list of %s (* matches any characters)" % (
                text,
                want,
                experiment,
                ", ".join([s.aliases[0] + "/" + s.name if s.aliases else s.name for s in steps]),
            ))
        for s in hits:
            if s not in chosen:
                chosen.append(s)
    return chosen

def _overrides_dir(settings):
    """The directory part that tells the settings apart: "cpu", "cpu-iters20-time30m"."""
    parts = [settings.profile]
    if settings.iters:
        parts.append("iters%d" % settings.iters)
    if settings.time:
        parts.append("time" + settings.time)
    return "-".join(parts)

def _input_line(f):
    return "%s\t%s" % (f.short_path, f.path)

def _command_flags(settings):
    """The flags that remake this run, for the manifest's command (defaults left out)."""
    flags = ["--profile=" + settings.profile]
    for key in ("steps", "seeds", "seed", "iters", "time", "tracker"):
        value = getattr(settings, key)
        if value != _DEFAULTS[key]:
            flags.append("--%s=%s" % (key, value))
    return flags

def _run_exec_group(profile):
    """The exec group of a profile's runs: its GPU target's (`gpu_h100`), or None on the CPU.

    Args:
      profile: an entry of experiments/profiles.bzl PROFILES.
    """
    return gpu_exec_group(profile["gpu_target"]) if profile["gpu_target"] else None

def _run_action(ctx, settings, step, seed, profile, programs, data, venv_info):
    """Declares one run's spec.json, inputs list and action; returns its record struct."""
    run = step.name + ("-s%d" % seed if seed != None else "")
    base = "%s/%s/%s/" % (ctx.label.name, _overrides_dir(settings), run)
    spec = ctx.actions.declare_file(base + "spec.json")
    ctx.actions.write(spec, json.encode({
        "experiment": ctx.attr.experiment,
        "step": step.name,
        "run": run,
        "label": step.label,
        "seed": seed,
        "kind": step.kind,
        "declaration": step.declaration,
        "profile": settings.profile,
        "profile_declaration": profile,
        "overrides": {
            "iters": settings.iters or None,
            "time": settings.time or None,
        },
        "schema": RECORD_SCHEMA,
    }))
    program = programs[step.program]
    runfiles = program[DefaultInfo].default_runfiles.files
    data_files = data[step.dataset].files if step.dataset and step.dataset not in IN_VENV else depset()
    listed = depset([venv_info], transitive = [runfiles, data_files])
    inputs_list = ctx.actions.declare_file(base + "inputs.txt")
    lines = ctx.actions.args()
    lines.set_param_file_format("multiline")

    # The spec by its content alone: where the build puts it is not what made the run.
    lines.add(spec, format = "spec.json\t%s")
    lines.add_all(listed, map_each = _input_line)
    ctx.actions.write(inputs_list, lines)
    trains = step.kind in TRAINING_KINDS
    outputs = [ctx.actions.declare_file(base + f) for f in (TRAIN_OUTPUTS if trains else MEASURE_OUTPUTS)]
    args = ctx.actions.args()
    args.add("--spec", spec)
    args.add("--inputs", inputs_list)
    args.add("--venv-info", venv_info)
    args.add("--out", outputs[0].dirname)
    data_list = data_files.to_list()
    if data_list:
        args.add("--data-root", data_list[0].dirname.rpartition("/")[0])
    ctx.actions.run(
        executable = program[DefaultInfo].files_to_run,
        arguments = [args],
        # Every listed file at its own path too: run_step hashes them there
        # (experiments/digest.py), and a worker has only the declared inputs.
        inputs = depset([spec, inputs_list], transitive = [listed]),
        outputs = outputs,
        mnemonic = "TrainRun" if trains else "MeasureRun",
        progress_message = "%s %s %s (%s)" % ("Training" if trains else "Measuring", ctx.attr.experiment, run, settings.profile),
        # The run keeps its checkpoints in the per-user store outside the output
        # tree (experiments/store.py), which a local sandbox would hide. It does
        # not keep the run off a remote worker, whose own store is on its
        # machine (containers/README.md, "The checkpoint store on a worker").
        execution_requirements = {"no-sandbox": "1"},
        # The strict action environment (.bazelrc: a fixed PATH, and the --action_env
        # an accelerator's config sets). Without a PATH, g++ cannot find its own
        # cc1plus, and torch.compile on the CPU (bitter9's scorer) fails.
        use_default_shell_env = True,
        exec_group = _run_exec_group(profile),
    )
    return struct(
        run = run,
        step = step.name,
        seed = seed,
        files = dict({f.basename: f for f in outputs}, **{"spec.json": spec, "inputs.txt": inputs_list}),
    )

def _experiment_impl(ctx):
    settings = _settings(ctx)
    decl = EXPERIMENTS[ctx.attr.experiment]
    profile = PROFILES[settings.profile]
    declared = decl.steps(profile)
    reference = experiment_reference(ctx.attr.experiment, profile, declared)
    steps = select_steps(declared, settings.steps, ctx.attr.experiment)
    seeds = [settings.seed + i for i in range(settings.seeds)]
    programs = {key: target for target, key in ctx.attr.programs.items()}
    data = {name: target for target, name in ctx.attr.datasets.items()}
    stats = {name: target for target, name in ctx.attr.stats.items()}
    venv_info = ctx.file._venv_info
    runs = []
    for seed in seeds:  # every step of one seed before the next, as the tables list them
        for step in steps:
            if step.seeded or seed == seeds[0]:
                runs.append(_run_action(ctx, settings, step, seed if step.seeded else None, profile, programs, data, venv_info))

    datasets = sorted({s.dataset: None for s in steps if s.dataset in stats}.keys())
    stats_files = [stats[d].files.to_list()[0] for d in datasets]
    base = "%s/%s/" % (ctx.label.name, _overrides_dir(settings))
    experiment_json = ctx.actions.declare_file(base + "experiment.json")
    ctx.actions.write(experiment_json, json.encode({
        "experiment": ctx.attr.experiment,
        "target": "//%s:%s" % (ctx.label.package, ctx.label.name),
        "reference": reference,
        "report": decl.report,
        "profile": settings.profile,
        "profile_declaration": profile,
        "settings": {s: getattr(settings, s) for s in _SETTINGS},
        "flags": _command_flags(settings),
        "steps": [{"step": s.name, "label": s.label, "kind": s.kind, "declaration": s.declaration} for s in steps],
        "runs": [{"run": r.run, "step": r.step, "seed": r.seed, "dir": r.files["result.json"].short_path.rpartition("/")[0]} for r in runs],
        "stats": {d: f.short_path for d, f in zip(datasets, stats_files)},
    }))
    report = ctx.actions.declare_directory(base + "report")
    report_inputs = [experiment_json] + stats_files
    for r in runs:
        report_inputs += [f for name, f in r.files.items() if name in ("result.json", "metrics.jsonl")]
    args = ctx.actions.args()
    args.add("--experiment", experiment_json)
    args.add("--bin-dir", ctx.bin_dir.path)
    args.add("--out", report.path)
    reports = {kind: target for target, kind in ctx.attr._reports.items()}
    ctx.actions.run(
        executable = reports.get(decl.report, reports["default"])[DefaultInfo].files_to_run,
        arguments = [args],
        inputs = report_inputs,
        outputs = [report],
        mnemonic = "Report",
        progress_message = "Reporting %s (%d runs)" % (ctx.attr.experiment, len(runs)),
    )

    launcher = ctx.actions.declare_file(ctx.label.name + ".install.sh")
    installer = ctx.attr._install[DefaultInfo]
    ctx.actions.write(launcher, "\n".join([
        "#!/bin/bash",
        "# Generated by experiments/defs.bzl: installs %s's results (experiments/install.py)." % ctx.label.name,
        'exec "%s" --experiment "%s" --report "%s" "$@"' % (
            installer.files_to_run.executable.short_path,
            experiment_json.short_path,
            report.short_path,
        ),
        "",
    ]), is_executable = True)
    run_files = [f for r in runs for f in r.files.values()]
    runfiles = ctx.runfiles(files = [experiment_json, report] + run_files).merge(installer.default_runfiles)
    return [DefaultInfo(
        executable = launcher,
        files = depset([experiment_json, report] + run_files),
        runfiles = runfiles,
    )]

_experiment_rule = rule(
    implementation = _experiment_impl,
    executable = True,
    # One per GPU target: a GPU profile's runs execute on that GPU's platform.
    exec_groups = gpu_exec_groups(),
    attrs = dict(
        {
            "experiment": attr.string(mandatory = True, values = list(EXPERIMENTS)),
            "programs": attr.label_keyed_string_dict(cfg = "exec", doc = "step program -> its key"),
            "datasets": attr.label_keyed_string_dict(allow_files = True, doc = "dataset files -> name"),
            "stats": attr.label_keyed_string_dict(allow_files = True, doc = "dataset stats.json -> name"),
            "fixed": attr.string_dict(doc = "settings that override the flags"),
            "_reports": attr.label_keyed_string_dict(
                default = {"//experiments:report": "default", "//experiments:report_decode": "decode"},
                cfg = "exec",
                doc = "the Report action's program, by report kind",
            ),
            "_install": attr.label(default = "//experiments:install", cfg = "target", executable = True),
            "_venv_info": attr.label(default = "@pip//:venv_info.json", allow_single_file = True),
        },
        **{"_" + s: attr.label(default = "//experiments/settings:" + s) for s in _SETTINGS}
    ),
)

def experiment(name, experiment = None, fixed = {}, **kwargs):
    """An experiment's results (experiments/experiments.bzl EXPERIMENTS[experiment or name]).

    Args:
      name: the target; `bazel run //experiments:<name>` builds and installs the results.
      experiment: the declared experiment, if not `name`.
      fixed: settings (profile, steps, seeds, seed, iters, time) this target pins.
      **kwargs: passed to the rule (tags, visibility, ...).
    """
    _experiment_rule(
        name = name,
        experiment = experiment or name,
        programs = {program_label(k): k for k in program_keys()},
        datasets = {dataset_label(n): n for n in list(BUILT) + list(PREPARED)},
        stats = {"//data:%s_stats" % n: n for n in list(BUILT) + [n for n, d in PREPARED.items() if d["modality"] == "text"]},
        fixed = fixed,
        **kwargs
    )

def _declared_steps_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.write(out, json.encode({
        name: {profile: decl.steps(PROFILES[profile]) for profile in PROFILES}
        for name, decl in EXPERIMENTS.items()
    }))
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

declared_steps = rule(
    implementation = _declared_steps_impl,
    doc = "<name>.json: experiment -> profile -> its steps, as experiments.bzl lists them.",
)
