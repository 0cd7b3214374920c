"""The read-ahead that keeps decoding workers busy while a backbone computes."""

from __future__ import annotations

import threading
import time

import pytest

from tiva_bench.core.feeder import read_ahead
from tiva_bench.core.pool import TaskFailure, supervised_map


def test_items_arrive_unchanged_and_in_order():
    assert list(read_ahead(iter(range(100)), depth=3)) == list(range(100))
    assert list(read_ahead([], depth=3)) == []
    assert list(read_ahead(range(5), depth=0)) == list(range(5))  # no thread


def test_the_source_runs_ahead_while_the_caller_holds_an_item_and_no_further_than_depth():
    produced = []

    def source():
        for i in range(50):
            produced.append(i)
            yield i

    items = read_ahead(source(), depth=4)
    assert next(items) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 6 and time.monotonic() < deadline:  # 1 taken, 4 queued, 1 waiting to be put
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(produced) == 6, produced
    assert list(items) == list(range(1, 50))


def test_an_error_in_the_source_is_raised_in_the_caller_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise KeyError("broken source")

    got = []
    with pytest.raises(KeyError, match="broken source"):
        for item in read_ahead(source(), depth=8):
            got.append(item)
    assert got == [1, 2]


def test_stopping_early_closes_the_source_and_ends_the_thread():
    closed = threading.Event()

    def source():
        try:
            for i in range(10_000):
                yield i
        finally:
            closed.set()

    before = threading.active_count()
    for item in read_ahead(source(), depth=2):
        if item == 3:
            break
    assert closed.wait(5)
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def _square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x * x


def test_read_ahead_over_worker_processes_keeps_their_order_and_failures():
    out = list(read_ahead(supervised_map(_square_or_fail, range(8), workers=2), depth=4))
    assert [i for i, _ in out] == list(range(8))
    assert isinstance(out[3][1], TaskFailure) and "three" in out[3][1].reason
    assert [v for i, v in out if i != 3] == [i * i for i in range(8) if i != 3]
