"""Keep decoding workers busy while the caller computes: a bounded read-ahead over an iterator.

``supervised_map`` hands a worker its next item only when the caller asks for the next result, so
while the caller runs a backbone on a batch, each worker finishes the one item it holds and waits.
``read_ahead(results, depth)`` drains an iterator in a background thread into a queue of at most
``depth`` results, so decoding and resampling go on during the forward pass (torch and numpy
release the GIL in their kernels); the caller receives the same items in the same order.

The thread stops when the caller stops iterating (a break, an exception, Ctrl-C): it closes the
source iterator (``supervised_map`` then stops its workers) at its next step. An exception raised
by the source is raised in the caller.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_ITEM, _DONE, _ERROR = "item", "done", "error"


def read_ahead(source: Iterable[T], depth: int, join_timeout_s: float = 10.0) -> Iterator[T]:
    """Yield ``source``'s items, produced up to ``depth`` items ahead in a background thread.

    ``depth <= 0`` iterates ``source`` directly (no thread). ``join_timeout_s``: how long the
    caller waits, when it stops early, for the thread to leave a source step in progress.
    """
    if depth <= 0:
        yield from source
        return
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple) -> bool:
        while not stop.is_set():
            try:
                slots.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        iterator = iter(source)
        try:
            for item in iterator:
                if not put((_ITEM, item)):
                    break
            else:
                put((_DONE, None))
        except BaseException as exc:  # handed to the caller, which raises it
            put((_ERROR, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=pump, name="tiva-bench-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
        thread.join(join_timeout_s)
