"""The experiments: each one's steps, enumerated from its declaration at analysis.

An experiment is a name, a function that lists its steps for a profile, its
reference and a report. The reference is what its summary compares each step
with, seed by seed (experiments/verdicts.py), named explicitly: one step's
name (every other step against it), a mapping step -> reference, a function
of the profile giving that mapping (for steps made at analysis), or None for
an experiment of measurements that compares nothing. A step is what one
action per seed trains or measures (experiments/defs.bzl):

  name         its directory and table name ("step08", "MLA", "lenet5-adamw-bitter7-70")
  aliases      other names --steps accepts for it ("8" for step08)
  label        what it is, for tables
  kind         the Python module that builds it (experiments/run_step.py KINDS)
  program      the step program that runs it (`program_label`): one per kind and
               model class, so a step's action depends on its own model file only
  declaration  what the kind module reads: the step's own declaration, never
               another step's (a change to one step retrains that step alone)
  dataset      the dataset it reads (data/datasets.bzl), or None
  seeded       one run per seed of --seeds, or one run in all (a measurement)

The declarations themselves are literals: experiments/ablations/steps.bzl,
gpt2_pruning.bzl, pruning_matrix.bzl, kvsplice_cache.bzl, bench_decode.bzl,
gpt2_inference.bzl.
"""

load("//experiments/ablations:steps.bzl", "RATIO_BASE", "RATIO_STEPS", "VARIANTS")
load(":bench_decode.bzl", "BENCH_DECODE")
load(":gpt2_inference.bzl", "GPT2_INFERENCE")
load(
    ":gpt2_pruning.bzl",
    PRUNING_METHODS = "METHODS",
    PRUNING_MODEL = "MODEL",
    PRUNING_OPTIMIZERS = "OPTIMIZERS",
    PRUNING_REFERENCE = "REFERENCE",
    PRUNING_SCHEDULE = "SCHEDULE",
    PRUNING_TARGET = "TARGET",
)
load(":kvsplice_cache.bzl", "KV_CACHE")
load(":pruning_matrix.bzl", "ADAM_FAMILY", "CPU_REDUCED", "CPU_RESNET", "LR", "MATRIX", "MODELS", "SCHEDULE", "SCHEDULE_ITERS", "WEIGHT_DECAY")

# The model classes of the GPT-2 zoo that a step program is built for.
GPT2_CLASSES = sorted({v["class"]: None for v in VARIANTS.values()}.keys())

# The kinds whose runs train (a TrainRun, through experiments/trainer.py); the
# others measure (a MeasureRun) and their programs do not include the trainer.
TRAINING_KINDS = ["gpt2", "vision"]

def _step(name, label, kind, program, declaration, dataset = None, aliases = [], seeded = True):
    return struct(
        name = name,
        aliases = aliases,
        label = label,
        kind = kind,
        program = program,
        declaration = declaration,
        dataset = dataset,
        seeded = seeded,
    )

def device_kind(profile):
    """"cpu" or "cuda": which of a declaration's per-device settings a profile uses."""
    return "cpu" if profile["device"] == "cpu" else "cuda"

def _gpt2(step_id, spec, variant_prefix, label, profile):
    variant = VARIANTS[variant_prefix]
    return {
        "kind": "gpt2",
        "program": "gpt2:" + variant["class"],
        "declaration": {"id": step_id, "step": spec, "variant": variant, "base": RATIO_BASE},
        "dataset": profile["dataset"],
        "label": label,
    }

def ratio_steps(profile):
    """The 19 RATIO steps: step00 ... step18 (aliases 0 ... 18).

    Args:
      profile: the profile's entry of experiments/profiles.bzl.

    Returns:
      The steps, as _step structs.
    """
    out = []
    for i, spec in sorted(RATIO_STEPS.items()):
        g = _gpt2(i, spec, spec["variant"], "%s: %s" % (spec["variant"], spec["doc"]), profile)
        out.append(_step(("step0%d" if i < 10 else "step%d") % i, aliases = [str(i)], **g))
    return out

def variant_steps(profile):
    """One step per variant prefix (B, RA, ... MLAKV2M).

    Each trains the prefix's class and options on the RATIO base and nothing
    else (experiments/ablations/registry.py variant_spec).

    Args:
      profile: the profile's entry of experiments/profiles.bzl.

    Returns:
      The steps, as _step structs.
    """
    out = []
    for prefix, variant in VARIANTS.items():
        spec = {"variant": prefix, "options": {}, "pruning": None, "doc": variant["doc"]}
        out.append(_step(prefix, **_gpt2(-1, spec, prefix, variant["doc"], profile)))
    return out

def pruning_steps(profile):
    """One GPT-2 step per optimizer and method of gpt2_pruning.bzl: adamw-none ... adamwspam-bitter9.

    Every pruned step declares the same schedule (SCHEDULE with the target);
    experiments/gpt2_step.py scales it to the profile's budget and builds the
    method with pruning/methods.py.

    Args:
      profile: the profile's entry of experiments/profiles.bzl.

    Returns:
      The steps, as _step structs.
    """
    out = []
    for opt in PRUNING_OPTIMIZERS:
        for method in PRUNING_METHODS:
            pruning = None
            what = "dense"
            if method != "none":
                pruning = dict(PRUNING_SCHEDULE, method = method, target = PRUNING_TARGET)
                what = "%s %d%%" % (method, int(PRUNING_TARGET * 100 + 0.5))
            spec = {
                "variant": PRUNING_MODEL["variant"],
                "options": PRUNING_MODEL["options"],
                "optimizer": opt,
                "pruning": pruning,
                "doc": "GPT-2, %s, %s" % (opt, what),
            }
            g = _gpt2(-1, spec, PRUNING_MODEL["variant"], "%s %s" % (opt, what), profile)
            out.append(_step("%s-%s" % (opt, method), **g))
    return out

def cell_name(model, optimizer, method, sparsity):
    suffix = "" if method == "none" else "-%d" % int(sparsity * 100 + 0.5)
    return "%s-%s-%s%s" % (model, optimizer, method, suffix)

def matrix_steps(profile):
    """The pruning matrix's cells (pruning_matrix.bzl MATRIX) for the profile's device.

    Args:
      profile: the profile's entry of experiments/profiles.bzl.

    Returns:
      The steps, as _step structs.
    """
    kind = device_kind(profile)
    out = []
    for model in MATRIX["models"]:
        settings = MODELS[kind].get(model)
        if settings == None:
            continue
        axes = CPU_RESNET if model in CPU_REDUCED and kind == "cpu" else MATRIX
        for opt in axes["optimizers"]:
            for method in axes["methods"]:
                if method.startswith("bitter") and opt not in ADAM_FAMILY:
                    continue  # AdamWPrune scores from Adam state; sgd has none
                for target in ([0.0] if method == "none" else axes["sparsities"]):
                    label = "%s %s %s" % (model, opt, method)
                    if method != "none":
                        label += " %d%%" % int(target * 100 + 0.5)
                    out.append(_step(
                        cell_name(model, opt, method, target),
                        label,
                        "vision",
                        "vision",
                        {
                            "model": model,
                            "optimizer": opt,
                            "method": method,
                            "target": target,
                            "settings": settings,
                            "lr": LR[opt],
                            "weight_decay": WEIGHT_DECAY,
                            "schedule": SCHEDULE,
                            "schedule_iters": SCHEDULE_ITERS,
                        },
                        dataset = settings["dataset"],
                    ))
    return out

def matrix_references(profile):
    """Each pruned cell's reference: the dense cell of its model and optimizer.

    Args:
      profile: the profile's entry of experiments/profiles.bzl.

    Returns:
      A dict, cell -> its dense cell, over the profile's cells.
    """
    names = [s.name for s in matrix_steps(profile)]
    out = {}
    for step in matrix_steps(profile):
        d = step.declaration
        if d["method"] != "none":
            dense = cell_name(d["model"], d["optimizer"], "none", 0.0)
            if dense in names:
                out[step.name] = dense
    return out

def cache_steps(profile):  # @unused: every experiment's steps take the profile
    """One measurement per class of kvsplice_cache.bzl.

    Args:
      profile: the profile's entry of experiments/profiles.bzl.

    Returns:
      The steps, as _step structs.
    """
    out = []
    for cls in KV_CACHE["classes"]:
        declaration = dict(KV_CACHE, **{"class": cls})
        declaration.pop("classes")
        out.append(_step(cls, cls, "kv_cache", "kv_cache:" + cls, declaration, seeded = False))
    return out

def decode_steps(profile):
    """The decode benchmark, one measurement (bench_decode.bzl)."""
    args = BENCH_DECODE[device_kind(profile)]
    return [_step("decode", "K16/V8 decode bandwidth", "decode", "decode", {"args": args}, seeded = False)]

def inference_steps(profile):
    """One measurement per GPT-2 class (gpt2_inference.bzl), each timed beside the base.

    Args:
      profile: the profile's entry of experiments/profiles.bzl.

    Returns:
      The steps, as _step structs.
    """
    settings = GPT2_INFERENCE[device_kind(profile)]
    out = []
    for cls in GPT2_CLASSES:
        declaration = dict(settings, **{"class": cls, "base": GPT2_INFERENCE["base"]})
        label = "%s generating (%s, %s)" % (cls, settings["size"], settings["dtype"])
        out.append(_step(cls, label, "inference", "inference:" + cls, declaration, seeded = False))
    return out

# Each experiment's steps, what its summary compares each step with, and how the summary
# reads (experiments/report.py REPORTS). The measurements (kvsplice_cache, bench_decode)
# take one run per step, against theory or copy bandwidth: nothing to compare seed by seed.
EXPERIMENTS = {
    "gpt2_ratio_ablation": struct(steps = ratio_steps, reference = "step00", report = "language"),
    "gpt2_variants": struct(steps = variant_steps, reference = "B", report = "language"),
    "gpt2_pruning": struct(steps = pruning_steps, reference = PRUNING_REFERENCE, report = "language_pruning"),
    "pruning_matrix": struct(steps = matrix_steps, reference = matrix_references, report = "classifier"),
    "kvsplice_cache": struct(steps = cache_steps, reference = None, report = "kv_cache"),
    "bench_decode": struct(steps = decode_steps, reference = None, report = "decode"),
    "gpt2_inference": struct(steps = inference_steps, reference = GPT2_INFERENCE["base"], report = "inference"),
}

def experiment_reference(name, profile, steps):
    """The experiment's reference on a profile, checked against its declared steps.

    Args:
      name: the experiment (a key of EXPERIMENTS).
      profile: the profile's entry of experiments/profiles.bzl.
      steps: the experiment's steps on that profile (every one, before --steps).

    Returns:
      None, one step's name, or a dict step -> reference.
    """
    ref = EXPERIMENTS[name].reference
    if type(ref) == "function":
        ref = ref(profile)
    names = [s.name for s in steps]
    pairs = {} if ref == None else ({"": ref} if type(ref) == "string" else ref)
    for step, reference in pairs.items():
        for n in ([step] if step else []) + [reference]:
            if n not in names:
                fail("knlp: %s: reference names %s, which is not one of its steps: %s" % (name, n, ", ".join(names)))
        if step == reference:
            fail("knlp: %s: step %s is its own reference" % (name, step))
    return ref

def program_keys():
    """Every step program: a kind, and for GPT-2 kinds the model class.

    Returns:
      The keys, "kind" or "kind:CLASS" ("gpt2:GPT2_MLA", "vision").
    """
    keys = ["gpt2:" + c for c in GPT2_CLASSES]
    keys += ["kv_cache:" + c for c in KV_CACHE["classes"]]
    keys += ["inference:" + c for c in GPT2_CLASSES]
    return keys + ["vision", "decode"]

def program_label(key):
    """The py_binary of a step program: //experiments:run_gpt2_mla for "gpt2:GPT2_MLA"."""
    kind, _, cls = key.partition(":")
    return "//experiments:run_" + kind + ("_" + cls.lower() if cls else "")
