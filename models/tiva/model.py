"""TiVAModel: the trainable parts (S, T, G and, for one-band layouts, the lift) in one module.

Saved as one safetensors file whose metadata holds the ``TiVAConfig`` (``save`` / ``load``), so a
checkpoint is self-describing; each component is also a diffusers ``ModelMixin`` with its own
``save_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from tiva_bench.models.tiva.config import TiVAConfig
from tiva_bench.models.tiva.generator import build_generator
from tiva_bench.models.tiva.layout import LayoutLift, extract_layout, layout_to_latent_map
from tiva_bench.models.tiva.layout_predictor import LayoutPredictor
from tiva_bench.models.tiva.semantic_encoder import SemanticEncoder
from tiva_bench.core.errors import TivaBenchError

CHECKPOINT_FORMAT = "tiva-bench/tiva/1"


class TiVAModel(nn.Module):
    def __init__(self, cfg: TiVAConfig):
        super().__init__()
        self.cfg = cfg.validate()
        layers = list(cfg.cls_layers)
        self.semantic = SemanticEncoder(cfg.feature_dim, cfg.semantic_dim, layers.index(cfg.semantic_layer))
        layout_out = cfg.layout_bands if cfg.layout_kind == "mel" else 1
        self.layout = LayoutPredictor(cfg.feature_dim, len(layers), cfg.n_frames, cfg.layout_time, layout_out, cfg.predictor_dim,
                                      cfg.predictor_heads, cfg.encoder_layers, cfg.decoder_layers, cfg.window, cfg.decoder_cls,
                                      cfg.decoder_attention, cfg.patch_cross_attention)
        self.lift = LayoutLift(cfg.layout_bands) if cfg.layout_kind != "mel" else None
        self.generator = build_generator(cfg)

    def target_layout(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Ground-truth layout t_a from a log-mel ``(B, frames, n_mels)``."""
        c = self.cfg
        return extract_layout(log_mel, c.layout_kind, c.layout_time, c.layout_bands)

    def layout_map(self, layout: torch.Tensor | None, batch: int, device, use_layout: bool | None = None) -> torch.Tensor:
        """The generator's extra input channel: the (lifted) layout resized to the latent, or zeros."""
        c = self.cfg
        use = c.use_layout if use_layout is None else use_layout
        if not use or layout is None:
            return torch.zeros(batch, 1, c.latent_time, c.latent_freq, device=device)
        if self.lift is not None:
            layout = self.lift(layout)
        return layout_to_latent_map(layout, c.latent_time, c.latent_freq)

    def save(self, path: str | Path, extra: dict | None = None, half: bool = False) -> Path:
        """Write the weights (float16 with ``half``: half the size, loaded back into float32)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous().cpu() for k, v in self.state_dict().items()}
        meta = {"format": CHECKPOINT_FORMAT, "config": json.dumps(self.cfg.to_dict())}
        if extra:
            meta["extra"] = json.dumps(extra)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(state, str(tmp), metadata=meta)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, map_location: str = "cpu") -> "TiVAModel":
        from safetensors import safe_open
        from safetensors.torch import load_file


        path = Path(path)
        if not path.exists():
            raise TivaBenchError(f"checkpoint {path} does not exist", "train one with `tiva-bench train` or use --preset tiva-tiny")
        try:
            with safe_open(str(path), "pt") as fh:
                meta = fh.metadata() or {}
        except Exception as exc:
            raise TivaBenchError(f"{path} is not a safetensors checkpoint ({type(exc).__name__})") from None
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise TivaBenchError(f"{path} is not a tiva-bench TiVA checkpoint (format {meta.get('format')!r})")
        model = cls(TiVAConfig.from_dict(json.loads(meta["config"])))
        missing, unexpected = model.load_state_dict(load_file(str(path), device=map_location), strict=False)
        if missing or unexpected:
            raise TivaBenchError(f"{path} does not fit its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return model


def checkpoint_extra(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return json.loads((fh.metadata() or {}).get("extra", "{}"))
