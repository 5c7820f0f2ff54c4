"""Sharding deals every test to exactly one shard."""

import os

import pytest

from tools.bazel.pytest_shard import shard_items


@pytest.mark.parametrize("total", [1, 2, 3, 7])
def test_every_item_lands_in_one_shard(total):
    items = list(range(20))
    shards = [shard_items(items, total, i) for i in range(total)]
    assert sorted(sum(shards, [])) == items


@pytest.mark.parametrize("n", range(6))
def test_runs_in_its_own_shard_only(n):
    # Under `bazel test` this file runs as 3 shards: each parametrized case
    # must run in exactly one of them (the shard index it was dealt to).
    total = int(os.environ.get("TEST_TOTAL_SHARDS", "1"))
    index = int(os.environ.get("TEST_SHARD_INDEX", "0"))
    position = 4 + n  # 4 cases of the test above are collected first
    assert position % total == index
