"""TiVAModel: the trainable parts (S, T, G and, for one-band layouts, the lift) in one module.

Saving and loading, two forms holding the same thing (weights + the whole ``TiVAConfig``):

* ``save_pretrained(DIR)`` / ``TiVAModel.from_pretrained(DIR)``: a diffusers-style folder,
  ``DIR/config.json`` (``_class_name``, format and every config field) and
  ``DIR/diffusion_pytorch_model.safetensors``;
* ``save(FILE)``: one safetensors file whose metadata holds the config (and an optional training
  record, ``checkpoint_extra``); this is what training writes and what the shipped
  ``assets/*.safetensors`` are.

``save(FILE, parts=...)`` keeps only some parts (``PARTS``: ``semantic``, ``layout``,
``generator``, ``lift``), e.g. a layout predictor trained alone; such a file loads with the other
parts freshly initialised and marked untrained: calling one raises ``UntrainedPartError``
naming the file. ``TiVAModel.compose`` joins parts from several files of the same config.

``from_pretrained`` and ``load`` read either form. A config saved before a field existed loads
with that field's ``LEGACY`` value (``config.py``), so older checkpoints give the outputs they
were trained to give. Each component (``semantic``, ``layout``, ``generator``) is also a diffusers
``ModelMixin``/``ConfigMixin`` with its own ``save_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from tiva_bench.core.errors import TivaBenchError
from tiva_bench.core.files import atomic_write_bytes, atomic_write_text
from tiva_bench.models.tiva.config import TiVAConfig
from tiva_bench.models.tiva.generator import build_generator
from tiva_bench.models.tiva.layout import LayoutLift, extract_layout, layout_to_latent_map
from tiva_bench.models.tiva.layout_predictor import LayoutPredictor
from tiva_bench.models.tiva.semantic_encoder import SemanticEncoder

CHECKPOINT_FORMAT = "tiva-bench/tiva/1"
PARTS = ("semantic", "layout", "generator", "lift")  # the trainable sub-modules, by attribute name
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


class UntrainedPartError(TivaBenchError):
    """A part of a partial checkpoint that was not stored (so never trained) was called."""


def _refuse_untrained(part: str, source: str):
    def hook(module, args):
        raise UntrainedPartError(f"{source} holds no trained {part} part (a partial checkpoint)",
                                 f"use a checkpoint that includes it, or compose one with TiVAModel.compose")
    return hook


class TiVAModel(nn.Module):
    def __init__(self, cfg: TiVAConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.untrained_parts: tuple[str, ...] = ()  # parts a partial checkpoint did not hold
        layers = list(cfg.cls_layers)
        self.semantic = SemanticEncoder(cfg.feature_dim, cfg.semantic_dim, layers.index(cfg.semantic_layer))
        layout_out = cfg.layout_bands if cfg.layout_kind == "mel" else 1
        self.layout = LayoutPredictor(cfg.feature_dim, len(layers), cfg.n_frames, cfg.layout_time, layout_out, cfg.predictor_dim,
                                      cfg.predictor_heads, cfg.encoder_layers, cfg.decoder_layers, cfg.window, cfg.decoder_cls,
                                      cfg.decoder_attention, cfg.patch_cross_attention, cfg.patch_grid, cfg.layout_head,
                                      cfg.cross_attention_window)
        self.lift = LayoutLift(cfg.layout_bands) if cfg.layout_kind != "mel" else None
        self.generator = build_generator(cfg)

    def target_layout(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Ground-truth layout t_a from a log-mel ``(B, frames, n_mels)``."""
        c = self.cfg
        return extract_layout(log_mel, c.layout_kind, c.layout_time, c.layout_bands)

    def layout_map(self, layout: torch.Tensor | None, batch: int, device, use_layout: bool | None = None) -> torch.Tensor:
        """The generator's extra input channel ``(B, 1, h, w)``: the layout (clamped to [0, 1] with
        ``layout_clamp``; lifted to C bands when it has one) resized to the latent, or zeros."""
        c = self.cfg
        use = c.use_layout if use_layout is None else use_layout
        if not use or layout is None:
            return torch.zeros(batch, 1, c.latent_time, c.latent_freq, device=device)
        if c.layout_clamp:
            layout = layout.clamp(0.0, 1.0)
        if self.lift is not None:
            layout = self.lift(layout)
        return layout_to_latent_map(layout, c.latent_time, c.latent_freq)

    # ------------------------------------------------------------ saving and loading

    def present_parts(self) -> tuple[str, ...]:
        """The parts this model has (``lift`` only for one-band layouts)."""
        return tuple(p for p in PARTS if getattr(self, p) is not None)

    def _state(self, half: bool, parts: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        keep = None if parts is None else tuple(f"{p}." for p in parts)
        return {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous().cpu() for k, v in self.state_dict().items()
                if keep is None or k.startswith(keep)}

    def save(self, path: str | Path, extra: dict | None = None, half: bool = False, parts: tuple[str, ...] | None = None) -> Path:
        """One safetensors file, config in its metadata (float16 with ``half``: half the size,
        loaded back into float32). ``extra``: a JSON-able training record. ``parts``: store only
        these parts (a subset of ``PARTS``; parts the model lacks are ignored); the file records
        which, and loading it marks the others untrained."""
        from safetensors.torch import save as safetensors_bytes

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": CHECKPOINT_FORMAT, "config": json.dumps(self.cfg.to_dict())}
        if parts is not None or self.untrained_parts:
            keep = PARTS if parts is None else _known_parts(parts)
            parts = tuple(p for p in self.present_parts() if p in keep and p not in self.untrained_parts)
            meta["parts"] = json.dumps(list(parts))
        if extra:
            meta["extra"] = json.dumps(extra)
        atomic_write_bytes(path, safetensors_bytes(self._state(half, parts), metadata=meta))  # unique temporary file, the user's umask
        return path

    def save_pretrained(self, save_directory: str | Path, half: bool = False, extra: dict | None = None) -> Path:
        """A diffusers-style folder: ``config.json`` + ``diffusion_pytorch_model.safetensors``."""
        from safetensors.torch import save as safetensors_bytes

        folder = Path(save_directory)
        if folder.exists() and not folder.is_dir():
            raise TivaBenchError(f"{folder} is a file, not a folder", "pass a folder to save_pretrained (or use save for one file)")
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / WEIGHTS_NAME, safetensors_bytes(self._state(half), metadata={"format": CHECKPOINT_FORMAT}))
        config = {"_class_name": type(self).__name__, "_format": CHECKPOINT_FORMAT, **self.cfg.to_dict()}
        if extra:
            config["_extra"] = extra
        atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=1))
        return folder

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str = "cpu") -> "TiVAModel":
        """Load a ``save_pretrained`` folder or a ``save`` file."""
        path = Path(path)
        if path.is_dir():
            return cls._from_folder(path, map_location)
        return cls.load(path, map_location)

    @classmethod
    def _from_folder(cls, folder: Path, map_location: str) -> "TiVAModel":
        from safetensors.torch import load_file

        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise TivaBenchError(f"{folder} is not a saved TiVA model (needs {CONFIG_NAME} and {WEIGHTS_NAME})",
                                 "point at a folder written by save_pretrained, or at a checkpoint .safetensors file")
        try:
            data = json.loads(config_path.read_text())
        except (ValueError, OSError) as exc:
            raise TivaBenchError(f"{config_path} cannot be read ({type(exc).__name__})", "save the model again") from None
        if data.get("_format") != CHECKPOINT_FORMAT:
            raise TivaBenchError(f"{config_path} is not a tiva-bench TiVA config (format {data.get('_format')!r})")
        cfg = TiVAConfig.from_dict({k: v for k, v in data.items() if not k.startswith("_")})
        return cls._with_weights(cfg, load_file(str(weights_path), device=map_location), weights_path)

    @classmethod
    def load(cls, path: str | Path, map_location: str = "cpu") -> "TiVAModel":
        """Load a ``save`` file (or, given a folder, a ``save_pretrained`` one)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.exists():
            raise TivaBenchError(f"checkpoint {path} does not exist", "train one with `tiva-bench train` or use --preset tiva-tiny")
        if path.is_dir():
            return cls._from_folder(path, map_location)
        try:
            with safe_open(str(path), "pt") as fh:
                meta = fh.metadata() or {}
        except Exception as exc:
            raise TivaBenchError(f"{path} is not a safetensors checkpoint ({type(exc).__name__})") from None
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise TivaBenchError(f"{path} is not a tiva-bench TiVA checkpoint (format {meta.get('format')!r})")
        try:
            cfg = TiVAConfig.from_dict(json.loads(meta["config"]))
            parts = tuple(json.loads(meta["parts"])) if "parts" in meta else None
        except (KeyError, ValueError, TypeError) as exc:
            raise TivaBenchError(f"{path} has an unreadable config ({exc})", "use a checkpoint written by this version") from None
        return cls._with_weights(cfg, load_file(str(path), device=map_location), path, parts)

    @classmethod
    def _with_weights(cls, cfg: TiVAConfig, state: dict, source: Path, parts: tuple[str, ...] | None = None) -> "TiVAModel":
        model = cls(cfg)
        missing, unexpected = model.load_state_dict(state, strict=False)
        absent = () if parts is None else tuple(p for p in model.present_parts() if p not in parts)
        missing = [k for k in missing if not k.startswith(tuple(f"{p}." for p in absent))]
        if missing or unexpected:
            raise TivaBenchError(f"{source} does not fit its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
        model.untrained_parts = absent
        for part in absent:
            getattr(model, part).register_forward_pre_hook(_refuse_untrained(part, Path(source).name))
        return model

    @classmethod
    def compose(cls, sources: dict[str, str | Path], map_location: str = "cpu") -> "TiVAModel":
        """One model from parts of several checkpoints of the same config: ``sources`` maps a
        part (``PARTS``) to a file; ``generator`` also brings ``semantic`` and ``lift`` unless
        they are named. Raises when the configs differ or a named file lacks its part."""
        if not sources:
            raise TivaBenchError("compose needs at least one part", f"map parts ({', '.join(PARTS)}) to checkpoint files")
        _known_parts(sources)
        wanted = dict(sources)
        for follower in ("semantic", "lift"):
            if follower not in wanted and "generator" in wanted:
                wanted[follower] = sources["generator"]
        loaded = {str(p): cls.load(p, map_location) for p in set(map(str, wanted.values()))}
        first = next(iter(loaded.values()))
        for path, m in loaded.items():
            if m.cfg.to_dict() != first.cfg.to_dict():
                differ = sorted(k for k, v in m.cfg.to_dict().items() if first.cfg.to_dict().get(k) != v)
                raise TivaBenchError(f"cannot compose {Path(path).name}: its config differs in {', '.join(differ[:3])}")
        present = [p for p in first.present_parts() if p in wanted]
        state = {}
        for part in present:
            src = loaded[str(wanted[part])]
            if part in src.untrained_parts:
                raise TivaBenchError(f"{Path(str(wanted[part])).name} holds no trained {part} part", "name a checkpoint that has it")
            state.update({k: v for k, v in src.state_dict().items() if k.startswith(f"{part}.")})
        return cls._with_weights(first.cfg, state, Path("the composed model"), parts=tuple(present))


def _known_parts(parts) -> tuple[str, ...]:
    """``parts`` as a tuple, each one of ``PARTS`` (else a one-line error naming it)."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise TivaBenchError(f"unknown model part {sorted(unknown)[0]!r}", f"parts are {', '.join(PARTS)}")
    return tuple(parts)


def checkpoint_extra(path: str | Path) -> dict:
    """The training record stored with a checkpoint (``{}`` when it has none)."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        return json.loads((path / CONFIG_NAME).read_text()).get("_extra", {})
    with safe_open(str(path), "pt") as fh:
        return json.loads((fh.metadata() or {}).get("extra", "{}"))
