"""TiVA: ``tiva-bench generate`` and the ``tiva`` / ``tiva-tiny`` adapters.

``generate_folder`` writes one 16-kHz wav per video, named after the video's stem, into ``out``,
and ``timing.json``: the paper's protocol (DESIGN.md section 4) -- an untimed warm-up call first
(the first batch with two solver steps, discarded: same shapes, a fraction of the cost), then
every batch timed with device synchronisation;
``seconds_per_sample`` is the total sampling time over the clips generated. Timed: the layout
predictor, semantic encoder and diffusion sampling from the frames' CLIP features; not timed: video
decoding, CLIP encoding, the mel decoder and the vocoder. The untimed warm-up also compiles the UNet
when the inference settings compile it; ``timing.inference`` records the settings used
(``precision``, ``compile``, ...; by default bf16 and compiled for the paper-sized model on a GPU,
float32 eager otherwise: ``models/tiva/inference.py``).

Writing is safe: two videos with the same stem in different folders would overwrite each other,
so they are refused before anything is generated (one line naming both); every file is written
to a temporary file in ``out`` and renamed over the target, so an existing symbolic link at a
target is replaced, never followed, and nothing is written outside ``out``.

The TiVA row (10.24-s clips at 16 kHz, the first 8 s scored): ``tiva=PATH`` uses any checkpoint;
plain ``tiva`` uses ``$TIVA_BENCH_TIVA_CHECKPOINT`` when set, the shipped tiny model on the
synthetic benchmark, and is an error on real data otherwise (the tiny model only knows the
synthetic benchmark; name ``tiva-tiny`` to run it anyway).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from tiva_bench.baselines.base import Adapter, RunContext, SystemInfo
from tiva_bench.core.data import folder_items, load_av_window
from tiva_bench.core.errors import ConfigError, InputError
from tiva_bench.core.files import atomic_open, atomic_write_text
from tiva_bench.models.tiva.pipeline import load_pipeline

ENV_CHECKPOINT = "TIVA_BENCH_TIVA_CHECKPOINT"
INFO = SystemInfo(method="TiVA", group="Diffusion", vis_feat="CLIP", guidance="CFG", clip_s=10.24, sample_rate=16000,
                  conventions="10.24-s clips at 16 kHz; the first 8 s are scored")


def check_unique_stems(items) -> None:
    """Refuse two videos whose outputs would share a name (``a/x.mp4`` and ``b/x.mp4``)."""
    seen: dict[str, Path] = {}
    for item in items:
        stem = Path(item.path).stem
        if stem in seen:
            raise ConfigError(f"two videos would write the same output {stem}.wav: {seen[stem]} and {item.path}",
                              "rename one of them or generate each folder separately")
        seen[stem] = Path(item.path)


def _write_npy(out: Path, name: str, array: np.ndarray) -> Path:
    """Write ``out/name`` (a ``.npy`` array) the same safe way as the audio."""
    target = out / name
    if target.parent != out or name in (".", ".."):
        raise ConfigError(f"refusing to write {name!r} outside {out}")
    with atomic_open(target, "wb") as fh:
        np.save(fh, np.asarray(array, np.float32))
    return target


def _write_wav(out: Path, name: str, wav: np.ndarray, sr: int) -> Path:
    """Write ``out/name`` through a temporary file in ``out`` (never follows a link, never leaves ``out``)."""
    import soundfile as sf

    target = out / name
    if target.parent != out or name in (".", ".."):
        raise ConfigError(f"refusing to write {name!r} outside {out}")
    with atomic_open(target, "wb") as fh:
        sf.write(fh, np.clip(wav, -1, 1), sr, subtype="FLOAT", format="WAV")
    return target


def generate_folder(videos: str | Path, out: str | Path, checkpoint=None, preset_name=None, seed: int = 0, steps: int = 25, guidance: float = 5.0,
                    use_layout=None, use_semantics: bool = True, batch_size: int = 16, device: str = "cpu", quiet: bool = False,
                    save_layouts: bool = True, precision: str = "auto", compile: str = "auto") -> dict:
    """Generate for every video below ``videos`` into ``out``; returns the summary also written
    as ``out/timing.json`` (``seconds_per_sample`` excludes the warm-up; see the module docstring).
    ``precision`` / ``compile``: override the default inference settings (``"auto"``: keep them)."""
    import torch

    items = folder_items(videos)
    check_unique_stems(items)  # before the model loads or anything is written
    pipe = load_pipeline(checkpoint, preset_name, device, precision=precision, compile=compile)
    cfg = pipe.cfg
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    skipped, done, sampling_s, per_batch = [], 0, 0.0, []
    warmed = False

    def sync():
        if pipe.device.type == "cuda":
            torch.cuda.synchronize(pipe.device)

    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="generating", unit="clip")
    for start in range(0, len(items), batch_size):
        batch, frames = [], []
        for item in items[start:start + batch_size]:
            try:
                w = load_av_window(item, cfg.fps, cfg.sample_rate, cfg.window_s, need_audio=False)
                frames.append(w.frames[: cfg.n_frames])
                batch.append(item)
            except InputError as exc:
                skipped.append({"clip": item.key, "reason": exc.reason})
        if bar is not None:
            bar.update(len(items[start:start + batch_size]))
        if not batch:
            continue
        cls, patch = pipe.encode_frames(frames)
        if not warmed:  # untimed warm-up: kernels, allocations, lazy initialisation
            pipe(cls, patch, generator=[torch.Generator("cpu").manual_seed(k) for k in range(len(batch))], steps=2, guidance=guidance,
                 use_layout=use_layout, use_semantics=use_semantics, decode=False, batch_size=batch_size)
            warmed = True
        sync()
        t0 = time.perf_counter()
        # one seed per clip position in the folder: results do not depend on the batch size
        gens = [torch.Generator("cpu").manual_seed(seed * 1_000_003 + start + k) for k in range(len(batch))]
        output = pipe(cls, patch, generator=gens, steps=steps, guidance=guidance, use_layout=use_layout,
                      use_semantics=use_semantics, decode=False, batch_size=batch_size, return_layout=True)
        latents = output.latents
        sync()
        elapsed = time.perf_counter() - t0
        sampling_s += elapsed
        per_batch.append({"clips": len(batch), "seconds": round(elapsed, 4)})
        wavs = pipe.codec.vocode(pipe.codec.decode_mel(latents), int(round(cfg.window_s * cfg.sample_rate)))
        layouts = output.layout.float().cpu().numpy() if output.layout is not None else [None] * len(batch)
        for item, wav, layout in zip(batch, wavs, layouts):
            _write_wav(out, f"{Path(item.path).stem}.wav", wav, cfg.sample_rate)
            if layout is not None and save_layouts:  # the layout the generator was given: (M, C), beside the audio
                _write_npy(out, f"{Path(item.path).stem}.layout.npy", layout)
            done += 1
    if bar is not None:
        bar.close()
    device_name = torch.cuda.get_device_name(pipe.device) if pipe.device.type == "cuda" else "cpu"
    summary = {"generated": done, "skipped": skipped, "seconds_per_sample": sampling_s / done if done else None,
               "timing": {"seconds_per_sample": sampling_s / done if done else None, "batches_timed": len(per_batch), "samples_timed": done,
                          "warmup_excluded": True, "warmup": "the first batch with two solver steps, untimed",
                          "includes": "layout predictor, semantic encoder and diffusion sampling; not CLIP encoding, mel decoder or vocoder",
                          "device": str(pipe.device), "device_name": device_name, "calls": per_batch,
                          "inference": pipe.inference_record()},
               "steps": steps, "guidance": guidance, "seed": seed, "use_layout": cfg.use_layout if use_layout is None else use_layout,
               "use_semantics": use_semantics, "checkpoint": str(checkpoint) if checkpoint else preset_name, "device": str(pipe.device),
               "device_name": device_name}
    atomic_write_text(out / "timing.json", json.dumps(summary, indent=1))
    return summary


def _adapter(name: str, label: str, checkpoint: str | None, preset: str | None) -> Adapter:
    def produce(items, out_dir: Path, seed: int, ctx: RunContext) -> dict:
        root = ctx.data_root if ctx.data_root is not None else (Path(items[0].path).parent if items else out_dir)
        return generate_folder(root, out_dir, checkpoint=checkpoint, preset_name=preset, seed=seed, device=ctx.device, quiet=True)

    info = INFO if checkpoint else SystemInfo(method=label, group="Diffusion", vis_feat="CLIP", guidance="CFG", clip_s=10.24, sample_rate=16000,
                                              conventions="the shipped tiny model of the synthetic benchmark")
    return Adapter(name, label, produce, info, kind="generated")


def factory(arg: str | None, ctx: RunContext | None = None) -> Adapter:
    """``tiva=PATH``, or ``tiva`` (see the module docstring)."""
    ctx = ctx or RunContext()
    checkpoint = arg or os.environ.get(ENV_CHECKPOINT)
    if checkpoint:
        if not Path(checkpoint).expanduser().is_file():
            raise ConfigError(f"tiva: checkpoint {checkpoint} does not exist", "give tiva=PATH to a .safetensors checkpoint written by `tiva-bench train`")
        return _adapter("tiva", "TiVA", str(Path(checkpoint).expanduser()), None)
    if ctx.real_data:
        raise ConfigError("'tiva' on real data needs a trained checkpoint: tiva=PATH (or $TIVA_BENCH_TIVA_CHECKPOINT)",
                          "train one with `tiva-bench train --preset tiva-paper --data VIDEOS --out runs/paper`; the shipped tiva-tiny only knows the synthetic benchmark")
    return _adapter("tiva", "TiVA (tiny)", None, "tiva-tiny")


def factory_tiny(arg: str | None = None, ctx: RunContext | None = None) -> Adapter:
    return _adapter("tiva-tiny", "TiVA (tiny)", None, "tiva-tiny")


def factory_tiny_nolayout(arg: str | None = None, ctx: RunContext | None = None) -> Adapter:
    return _adapter("tiva-tiny-nolayout", "TiVA (tiny) w/o layout", None, "tiva-tiny-nolayout")
