"""Loading official checkpoints strictly: every key consumed, every shape matched, clear errors."""

from __future__ import annotations

from pathlib import Path

import torch

from tiva_bench.core.errors import TivaBenchError


class CheckpointMismatch(TivaBenchError):
    """A checkpoint does not have the architecture's key/shape map."""


def read_state_dict(path: str | Path, nested_key: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pt``/``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` file.

    ``nested_key``: the state dict sits under this key (PANNs checkpoints keep it under "model").
    A "module." prefix (DataParallel) is removed.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign files
        raise CheckpointMismatch(f"{path} cannot be read as a checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
                                 "download it again: tiva-bench weights download NAME") from None
    if nested_key is not None and isinstance(state, dict) and nested_key in state and isinstance(state[nested_key], dict):
        state = state[nested_key]
    if not isinstance(state, dict):
        raise CheckpointMismatch(f"{path} does not hold a state dict")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_exactly(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` only if keys and shapes match exactly; else one clear error."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} with other shapes (e.g. {wrong[0]}: {got[wrong[0]]} vs {expected[wrong[0]]})")
        raise CheckpointMismatch(f"{source} does not fit {type(module).__name__}: " + "; ".join(parts), "check you downloaded the right file: tiva-bench weights verify")
    module.load_state_dict(state, strict=True)
