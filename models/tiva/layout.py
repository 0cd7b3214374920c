"""Audio layouts: the time-frequency energy sketch that TiVA conditions on (Sec. 3, Table 3).

``mel`` (default): ``t_a = Resize(Norm(mel); M, C)``: the log-mel spectrogram min-max normalised per
clip to [0, 1] ("Norm"), then area-averaged to ``M`` time steps x ``C`` bands ("Resize").
``odf``: the onset-strength curve of the mel (mean positive spectral flux), normalised to [0, 1]
per clip and resized to ``M`` steps, one band. ``onset``: the ``odf`` curve's local maxima above
half its peak, as a 0/1 signal. One-band layouts are lifted to ``C`` bands by a learned 1-D
convolution (``LayoutLift``) before they reach the generator.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _minmax(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.view(-1, *[1] * (x.dim() - 1))
    hi = flat.max(dim=1).values.view(-1, *[1] * (x.dim() - 1))
    return (x - lo) / (hi - lo).clamp_min(1e-8)


def mel_layout(log_mel: torch.Tensor, time_steps: int = 102, bands: int = 5) -> torch.Tensor:
    """``log_mel`` ``(B, frames, n_mels)`` -> layout ``(B, M, C)`` in [0, 1]."""
    return F.adaptive_avg_pool2d(_minmax(log_mel).unsqueeze(1), (time_steps, bands)).squeeze(1)


def odf_layout(log_mel: torch.Tensor, time_steps: int = 102) -> torch.Tensor:
    """Onset-strength curve of the mel -> ``(B, M, 1)`` in [0, 1]."""
    flux = F.relu(log_mel[:, 1:] - log_mel[:, :-1]).mean(dim=2)
    flux = F.pad(flux, (1, 0))
    curve = F.adaptive_avg_pool1d(flux.unsqueeze(1), time_steps).squeeze(1)
    return _minmax(curve).unsqueeze(-1)


def onset_layout(log_mel: torch.Tensor, time_steps: int = 102) -> torch.Tensor:
    """0/1 onsets: local maxima of the ``odf`` curve above half its peak -> ``(B, M, 1)``."""
    curve = odf_layout(log_mel, time_steps)[..., 0]
    left = F.pad(curve, (1, 0), value=-1.0)[:, :-1]
    right = F.pad(curve, (0, 1), value=-1.0)[:, 1:]
    return ((curve >= left) & (curve > right) & (curve >= 0.5)).float().unsqueeze(-1)


def extract_layout(log_mel: torch.Tensor, kind: str, time_steps: int, bands: int) -> torch.Tensor:
    if kind == "mel":
        return mel_layout(log_mel, time_steps, bands)
    if kind == "odf":
        return odf_layout(log_mel, time_steps)
    if kind == "onset":
        return onset_layout(log_mel, time_steps)
    raise ValueError(f"unknown layout kind {kind!r}")


def layout_to_latent_map(layout: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Layout ``(B, M, C)`` -> one extra input channel ``(B, 1, height, width)`` (bilinear resize)."""
    return F.interpolate(layout.unsqueeze(1), size=(height, width), mode="bilinear", align_corners=False)


class LayoutLift(nn.Module):
    """Lifts a one-band layout ``(B, M, 1)`` to ``(B, M, C)`` with a 1-D convolution (Table 3)."""

    def __init__(self, bands: int):
        super().__init__()
        self.conv = nn.Conv1d(1, bands, kernel_size=3, padding=1)

    def forward(self, layout: torch.Tensor) -> torch.Tensor:
        return self.conv(layout.transpose(1, 2)).transpose(1, 2)
