"""``tiva-bench generate``: one 16-kHz wav per video (same stem) from a TiVA checkpoint, and a
timing record (mean per-sample sampling time, vocoder excluded, device named)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tiva_bench.core.data import folder_items, load_av_window
from tiva_bench.core.errors import InputError
from tiva_bench.models.tiva.pipeline import load_pipeline


def generate_folder(videos: str | Path, out: str | Path, checkpoint=None, preset_name=None, seed: int = 0, steps: int = 25, guidance: float = 5.0,
                    use_layout=None, use_semantics: bool = True, batch_size: int = 16, device: str = "cpu", quiet: bool = False) -> dict:
    pipe = load_pipeline(checkpoint, preset_name, device)
    cfg = pipe.cfg
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = folder_items(videos)
    skipped, done, sampling_s = [], 0, 0.0
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
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        # one seed per clip position in the folder: results do not depend on the batch size
        gens = [torch.Generator("cpu").manual_seed(seed * 1_000_003 + start + k) for k in range(len(batch))]
        latents = pipe(cls, patch, generator=gens, steps=steps, guidance=guidance, use_layout=use_layout,
                       use_semantics=use_semantics, decode=False, batch_size=batch_size).latents
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        sampling_s += time.perf_counter() - t0
        wavs = pipe.codec.vocode(pipe.codec.decode_mel(latents), int(round(cfg.window_s * cfg.sample_rate)))
        for item, wav in zip(batch, wavs):
            target = out / f"{Path(item.key).name}.wav"
            sf.write(target, np.clip(wav, -1, 1), cfg.sample_rate, subtype="FLOAT")
            done += 1
    if bar is not None:
        bar.close()
    summary = {"generated": done, "skipped": skipped, "seconds_per_sample": sampling_s / max(done, 1), "steps": steps, "guidance": guidance,
               "seed": seed, "use_layout": cfg.use_layout if use_layout is None else use_layout, "use_semantics": use_semantics,
               "checkpoint": str(checkpoint) if checkpoint else preset_name, "device": str(pipe.device),
               "device_name": torch.cuda.get_device_name(pipe.device) if pipe.device.type == "cuda" else "cpu"}
    (out / "timing.json").write_text(json.dumps(summary, indent=1))
    return summary
