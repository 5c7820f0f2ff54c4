"""`dryrun_step_tests`: one cached dry-run test per RATIO step, from steps.bzl.

Each test depends on the registry, the dry-run and the one model file its
step's class lives in (models/gpt2/<class in lower case>.py), so editing a
model reruns only the steps that build it.
"""

load("//tools/bazel:pytest.bzl", "py_pytest_test")

def dryrun_step_tests(name, steps, variants):
    """Declares dryrun_step_<id> for every step, and a test_suite of them all.

    Args:
      name: the name of the test_suite.
      steps: RATIO_STEPS from steps.bzl.
      variants: VARIANTS from steps.bzl.
    """
    names = []
    for step_id, spec in steps.items():
        test = "dryrun_step_%d" % step_id
        cls = variants[spec["variant"]]["class"]
        py_pytest_test(
            name = test,
            size = "small",
            srcs = ["dryrun_step_test.py"],
            env = {"KNLP_STEP": str(step_id)},
            deps = [
                ":dryrun",
                "//models/gpt2:" + cls.lower(),
            ],
        )
        names.append(test)
    native.test_suite(
        name = name,
        tests = names,
    )
