"""pytest plugin: run only this Bazel shard's share of the collected tests.

Bazel sets TEST_TOTAL_SHARDS and TEST_SHARD_INDEX for a target with
`shard_count`, and expects the runner to touch TEST_SHARD_STATUS_FILE to show
that it understands sharding. Tests are dealt round-robin in collection order,
which is stable, so a shard always runs the same tests.
"""

import os


def shard_items(items, total, index):
    """The items that shard `index` of `total` runs."""
    return [item for i, item in enumerate(items) if i % total == index]


def pytest_collection_modifyitems(config, items):
    total = int(os.environ.get("TEST_TOTAL_SHARDS", "1"))
    if total <= 1:
        return
    status = os.environ.get("TEST_SHARD_STATUS_FILE")
    if status:
        open(status, "a").close()
    keep = shard_items(items, total, int(os.environ["TEST_SHARD_INDEX"]))
    deselected = [item for item in items if item not in keep]
    config.hook.pytest_deselected(items=deselected)
    items[:] = keep
