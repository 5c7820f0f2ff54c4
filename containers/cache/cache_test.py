"""Integration test of the shared Bazel cache: two checkouts, one nginx, real Bazel.

It starts nginx (serve.CacheServer) on 127.0.0.1 on a free port, copies the
sample workspace (containers/cache/sample) into checkout A and builds and tests
it with `--config=remote-cache-write` and credentials, then into checkout B, in
another directory with its own output base, with the read-only
`--config=remote-cache`. Every cacheable action of B must be a remote-cache hit
and its tests must show as cached. Checkout C acts as a machine with another
toolkit: only the actions that carry the toolkit's identity miss, and its
uploads, made without credentials, are refused. Finally the cache is stopped
and B, cleaned, still builds and passes. Both checkouts use the project's real
.bazelrc; only the cache URL and the credentials come from each checkout's
.bazelrc.user, as they would on monster and prune.

Run by `bazel test //containers/cache:cache_test` (part of `bazel test //...`)
or `pytest containers/cache/cache_test.py`. It prints the hit ratio.
"""

import hashlib
import json
import os
import secrets
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from containers.cache import nested, serve

HERE = Path(__file__).parent
REPO = HERE.parent.parent
SAMPLE = HERE / "sample"
# The sample's spawns that Bazel may take from the remote cache: 3 genrules, and
# for each of the 2 tests the test run and the test.xml it generates.
SAMPLE_CACHEABLE = 7
# The two that depend on the toolkit identity: the "compile" and its test.
IDENTITY_DEPENDENT = {"//:kernel", "//:kernel_test"}
SAMPLE_TESTS = {"//:counts_test", "//:kernel_test"}


def make_checkout(dest, cache_url, write_credentials=None):
    """A copy of the sample workspace at `dest`, pointed at `cache_url`."""
    dest.mkdir(parents=True)
    for src in SAMPLE.iterdir():
        name = {"WORKSPACE.sample": "WORKSPACE", "BUILD.sample": "BUILD.bazel"}.get(
            src.name, src.name
        )
        shutil.copy(src, dest / name)
    shutil.copy(REPO / "tools" / "bazel" / "bazel_rules.bzl", dest / "bazel_rules.bzl")
    shutil.copy(REPO / ".bazelrc", dest / ".bazelrc")
    user_rc = [f"build:remote-cache --remote_cache={cache_url}"]
    if write_credentials:
        # Quoted: the value holds a space ("Basic <base64>"), and an rc file
        # splits unquoted words like a shell.
        user_rc.append(
            'build:remote-cache-write "--remote_header=Authorization='
            + serve.basic_auth_header(*write_credentials)
            + '"'
        )
    (dest / ".bazelrc.user").write_text("\n".join(user_rc) + "\n")
    return dest


def http(method, url, body=None, auth=None):
    request = urllib.request.Request(url, data=body, method=method)
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def put_without_an_output(server, auth):
    """Uploads an action result Bazel wrote again, first with an output file it
    names moved out of cas/, then with the file back: the two (status, body)."""
    for entry in sorted((server.data_dir / "ac").iterdir()):
        result = entry.read_bytes()
        outputs = [b for b in serve.named_blobs(result) if b[0].startswith("output file")]
        if outputs:
            break
    blob = server.data_dir / "cas" / outputs[0][1]
    aside = blob.with_name("aside")
    url = f"{server.url}/ac/{entry.name}"
    blob.rename(aside)
    try:
        without = http("PUT", url, result, auth)
    finally:
        aside.rename(blob)
    return without, http("PUT", url, result, auth)


def labels(spawns):
    """Target labels of spawns ("Executing genrule //:kernel" -> "//:kernel")."""
    return {s.get("progressMessage", "").split()[-1] for s in spawns}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = Path(os.environ.get("TEST_TMPDIR") or tmp_path_factory.mktemp("cache"))
    work = base / "cache_scenario"
    shutil.rmtree(work, ignore_errors=True)
    user_root = work / "bazel_user_root"
    credentials = ("writer", secrets.token_urlsafe(16))
    results = {}
    test_args = ["--test_summary=short", "--color=no", "--curses=no", "--noshow_progress"]
    server = serve.CacheServer(work / "cache", users={credentials[0]: credentials[1]})
    server.start()
    try:
        a = make_checkout(work / "checkout_a", server.url, credentials)
        b = make_checkout(work / "elsewhere" / "checkout_b", server.url)
        c = make_checkout(work / "checkout_c", server.url)

        results["a"] = nested.run_bazel(
            a,
            user_root,
            "test",
            ["//...", "--config=remote-cache-write"] + test_args,
            work / "a.json",
        )
        results["entries_after_a"] = server.entries()
        results["b"] = nested.run_bazel(
            b, user_root, "test", ["//...", "--config=remote-cache"] + test_args, work / "b.json"
        )
        results["entries_after_b"] = server.entries()
        # Machine C: another toolkit, and it tries to upload without credentials.
        results["c"] = nested.run_bazel(
            c,
            user_root,
            "test",
            ["//...", "--config=remote-cache-write", "--repo_env=SAMPLE_TOOLKIT=sampletool 2.0"]
            + test_args,
            work / "c.json",
        )
        results["entries_after_c"] = server.entries()

        body = b"not a real action result"
        digest = hashlib.sha256(body).hexdigest()
        results["anonymous_put"] = http("PUT", f"{server.url}/cas/{digest}", body)[0]
        results["wrong_password_put"] = http(
            "PUT", f"{server.url}/cas/{digest}", body, serve.basic_auth_header("writer", "wrong")
        )[0]
        an_entry = next((server.data_dir / "cas").iterdir()).name
        results["anonymous_get"] = http("GET", f"{server.url}/cas/{an_entry}")[0]
        results["anonymous_delete"] = http("DELETE", f"{server.url}/cas/{an_entry}")[0]
        results["without_an_output"], results["with_the_output"] = put_without_an_output(
            server, serve.basic_auth_header(*credentials)
        )

        server.stop()
        nested.run_bazel(b, user_root, "clean", [])
        results["b_without_cache"] = nested.run_bazel(
            b, user_root, "test", ["//...", "--config=remote-cache"] + test_args, work / "d.json"
        )
    finally:
        server.stop()
        nested.remove_output_root(user_root)
    a, b = results["a"], results["b"]
    summary = {
        "cacheable_actions": len(b.cacheable),
        "remote_cache_hits": len(b.hits),
        "hit_ratio": round(b.hit_ratio, 3),
        "cold_seconds_a": round(a.seconds, 2),
        "cached_seconds_b": round(b.seconds, 2),
        "bazel_b": b.processes_line(),
        "tests_b": b.tests(),
    }
    results["summary"] = summary
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outputs:
        Path(outputs, "cache_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return results


def test_first_checkout_builds_cold_and_uploads(scenario):
    a = scenario["a"]
    assert len(a.cacheable) == SAMPLE_CACHEABLE, a.output
    assert not a.hits, "the cache was empty, yet A reports hits"
    assert set(a.tests().values()) == {"PASSED"}, a.output
    # One action-cache entry per cacheable action; outputs and logs in cas/.
    assert scenario["entries_after_a"]["ac"] == SAMPLE_CACHEABLE
    assert scenario["entries_after_a"]["cas"] >= SAMPLE_CACHEABLE


def test_second_checkout_hits_every_cacheable_action(scenario):
    b = scenario["b"]
    assert len(b.cacheable) == SAMPLE_CACHEABLE, b.output
    assert b.hit_ratio == 1.0, f"misses: {labels(b.misses)}\n{b.output}"
    assert f"{SAMPLE_CACHEABLE} remote cache hit" in b.processes_line(), b.output
    assert b.tests() == {t: "(cached) PASSED" for t in SAMPLE_TESTS}, b.output
    # The read-only client wrote nothing.
    assert scenario["entries_after_b"] == scenario["entries_after_a"]


def test_other_toolkit_misses_only_its_actions(scenario):
    c = scenario["c"]
    assert labels(c.misses) == IDENTITY_DEPENDENT, c.output
    assert len(c.hits) == SAMPLE_CACHEABLE - len(IDENTITY_DEPENDENT), c.output
    assert c.tests()["//:counts_test"] == "(cached) PASSED"
    assert c.tests()["//:kernel_test"] == "PASSED"


def test_unauthenticated_writes_are_refused(scenario):
    # C ran --config=remote-cache-write without credentials: its uploads were
    # refused (Bazel warns and goes on) and nothing was stored.
    assert "Writing to Remote Cache" in scenario["c"].output
    assert scenario["entries_after_c"] == scenario["entries_after_a"]
    assert scenario["anonymous_put"] == 401
    assert scenario["wrong_password_put"] == 401
    assert scenario["anonymous_delete"] == 401
    assert scenario["anonymous_get"] == 200


def test_action_result_needs_its_outputs_in_cas(scenario):
    # Every entry Bazel uploaded was stored (test_first_checkout_builds_cold_and_uploads),
    # empty stdout and stderr included; one of them whose output file is gone is refused.
    status, reason = scenario["without_an_output"]
    assert status == 400 and b"which cas/ does not hold" in reason, reason
    assert scenario["with_the_output"][0] == 204  # stored before: replaced, not new


def test_build_succeeds_with_the_cache_stopped(scenario):
    d = scenario["b_without_cache"]
    assert d.returncode == 0
    assert len(d.cacheable) == SAMPLE_CACHEABLE and not d.hits, d.output
    assert d.tests() == {t: "PASSED" for t in SAMPLE_TESTS}, d.output


def test_report_hit_ratio(scenario, capsys):
    """Prints the figures into the test log (and they are in cache_summary.json)."""
    summary = scenario["summary"]
    with capsys.disabled():
        print(
            f"\nshared cache: checkout B took {summary['remote_cache_hits']} of "
            f"{summary['cacheable_actions']} cacheable actions from the cache "
            f"(hit ratio {summary['hit_ratio']}); A cold {summary['cold_seconds_a']} s, "
            f"B {summary['cached_seconds_b']} s; Bazel: {summary['bazel_b']}; "
            f"tests: {summary['tests_b']}"
        )
    assert summary["cacheable_actions"] == SAMPLE_CACHEABLE
