"""Train the synthetic domain's classifier and write metrics/extractors/assets/synth_classifier.safetensors.

Reproduce the shipped checkpoints (about 10 minutes each on two CPU cores):

    python scripts/train_synth_classifier.py                          # v1, 5 classes: test accuracy 0.993
    python scripts/train_synth_classifier.py --synthetic-version 2    # v2, 7 classes: synth_classifier_v2.safetensors

Data: synthetic scenes rendered in memory with ``tiva_bench.synthetic`` (the same code that writes
the benchmark files), data seed 1000: 2,000 train clips, 300 val clips, 600 test clips, label =
the clip's main class (from the benchmark version's classes). Augmentation: random gain, a random time shift, faint noise. Training seed 0.
The record (seeds, sizes, accuracies, versions) is stored in the checkpoint's metadata.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tiva_bench.metrics.extractors.synth_classifier import CHECKPOINTS, build_model  # noqa: E402
from tiva_bench.synthetic import class_names, clip_seed, make_scene, render_audio  # noqa: E402


def render_split(split: str, n: int, data_seed: int, version: int) -> tuple[np.ndarray, np.ndarray]:
    names = class_names(version)
    wavs, labels = [], []
    for i in range(n):
        scene = make_scene(f"{split}_{i}", clip_seed(data_seed, split, i), version=version)
        wavs.append(render_audio(scene))
        labels.append(names.index(scene.cls))
    return np.stack(wavs), np.array(labels)


def predictions(model, wavs, torch) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(wavs), 64):
            _, logits = model(torch.from_numpy(wavs[s:s + 64]))
            out.append(logits.argmax(1).numpy())
    return np.concatenate(out)


def accuracy(model, wavs, labels, torch) -> float:
    return float(np.mean(predictions(model, wavs, torch) == labels))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-seed", type=int, default=1000)
    ap.add_argument("--synthetic-version", type=int, default=1, choices=sorted(CHECKPOINTS))
    ap.add_argument("--out", default=None, help="default: the shipped checkpoint of the version")
    args = ap.parse_args()
    version = args.synthetic_version
    out = args.out or str(CHECKPOINTS[version])
    names = class_names(version)

    import torch
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    x_train, y_train = render_split("train", args.n_train, args.data_seed, version)
    x_val, y_val = render_split("val", 300, args.data_seed, version)
    x_test, y_test = render_split("test", 600, args.data_seed, version)
    print(f"rendered data in {time.time() - t0:.0f} s", flush=True)

    model = build_model(n_classes=len(names))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * int(np.ceil(len(x_train) / 32))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(x_train))
        total = 0.0
        for s in range(0, len(order), 32):
            idx = order[s:s + 32]
            batch = x_train[idx] * rng.uniform(0.3, 1.2, size=(len(idx), 1)).astype(np.float32)
            shifts = rng.integers(-8000, 8000, size=len(idx))
            batch = np.stack([np.roll(b, k) for b, k in zip(batch, shifts)])
            batch = batch + rng.standard_normal(batch.shape).astype(np.float32) * rng.uniform(0, 0.01, size=(len(idx), 1)).astype(np.float32)
            _, logits = model(torch.from_numpy(batch))
            loss = loss_fn(logits, torch.from_numpy(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / len(x_train):.4f}, val acc {accuracy(model, x_val, y_val, torch):.4f} ({time.time() - t0:.0f} s)", flush=True)
    test_pred = predictions(model, x_test, torch)
    record = {
        "seed": args.seed, "data_seed": args.data_seed, "n_train": args.n_train, "n_val": 300, "n_test": 600,
        "epochs": args.epochs, "synthetic_version": version, "classes": list(names),
        "val_acc": accuracy(model, x_val, y_val, torch), "test_acc": float(np.mean(test_pred == y_test)),
        "test_acc_per_class": {n: round(float(np.mean(test_pred[y_test == k] == k)), 4) for k, n in enumerate(names)},
        "torch": torch.__version__, "seconds": round(time.time() - t0),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, out, metadata={"training": json.dumps(record)})
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
