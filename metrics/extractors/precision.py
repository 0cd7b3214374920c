"""The arithmetic a backbone's network pass runs in, and the one forward pass every extractor shares.

Precisions (``AudioExtractor.dtype``, part of the feature cache's key):

* ``float32``: IEEE single precision throughout; on CUDA, TF32 is switched off for the pass
  (cuDNN allows it for convolutions by default, which moves outputs by about 1e-3).
* ``tf32``: float32 tensors, with matrix products and convolutions on CUDA's TF32 tensor cores
  (inputs rounded to a 10-bit mantissa, sums in float32). CUDA only: elsewhere it is ``float32``.
* ``float16`` / ``bfloat16``: ``torch.autocast``; outputs are returned as float32. A batch whose
  outputs are not all finite (a float16 overflow) is recomputed in float32 and counted.

Front-ends always run in float32 with TF32 off, outside autocast: spectrogram maths (power,
logarithms near their floor) is where low precision would hurt and it costs little.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

AUTOCAST_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@contextmanager
def tf32_allowed(allowed: bool) -> Iterator[None]:
    """Allow or forbid TF32 in CUDA matrix products and cuDNN convolutions inside the block
    (process-wide flags, restored on exit; no effect off CUDA)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextmanager
def precision_scope(device_type: str, precision: str) -> Iterator[None]:
    """Run the block in ``precision`` (one of ``float32``, ``tf32``, ``float16``, ``bfloat16``) on a
    device of type ``device_type`` (``"cpu"``, ``"cuda"``, ...)."""
    if precision in AUTOCAST_DTYPES:
        with tf32_allowed(False), torch.autocast(device_type, dtype=AUTOCAST_DTYPES[precision]):
            yield
    elif precision in ("float32", "tf32"):
        with tf32_allowed(precision == "tf32"), torch.autocast(device_type, enabled=False):
            yield
    else:
        raise ValueError(f"unknown precision {precision!r}")


def run_network(network: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor, device_type: str,
                precision: str) -> tuple[dict[str, torch.Tensor], bool]:
    """``network(x)`` in ``precision``, outputs as float32; and whether the batch had to be
    recomputed in float32 because a mixed-precision output was not finite."""
    with precision_scope(device_type, precision):
        out = {k: v.float() for k, v in network(x).items()}
    if precision in AUTOCAST_DTYPES and not all(bool(torch.isfinite(v).all()) for v in out.values()):
        with precision_scope(device_type, "float32"):
            return {k: v.float() for k, v in network(x).items()}, True
    return out, False
