"""The project's figures (matplotlib, Agg backend), written as PNG and PDF in a publication style.

* ``plot_mel_grid``: the paper's Figure 4 -- for each chosen clip (a column), the video frames (when
  known), the reference's mel spectrogram, each system's, and the predicted audio layout (when
  given), stacked top to bottom with shared time axes.
* ``mel_grid_from_results``: the same from ``results.json`` dicts (audio paths in ``per_clip``).
* ``plot_metric_distributions``: per-clip values of each metric, one box + points per system, with
  the mean and its interval.
* ``plot_layout_resolution``: the paper's Figure 5 -- training loss and validation L2 against step,
  one curve per layout resolution.
* ``mel_db`` / ``write_mel_png``: the spectrogram maths and a fast (no matplotlib figure) PNG of it,
  used by the HTML report for hundreds of clips.

Spectrograms use the TiVA/AudioLDM front-end: 16 kHz, n_fft 1024, hop 160 (10 ms), 64 mel bands,
0-8 kHz, in dB relative to the clip's peak, clipped at -80 dB (one colour scale for every panel).
Every ``out_base`` gets ``out_base.png`` (300 dpi) and ``out_base.pdf``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from tiva_bench.core.audio import VIDEO_EXTENSIONS, AudioClip
from tiva_bench.core.errors import ConfigError, InputError
from tiva_bench.core.files import atomic_write_bytes
from tiva_bench.core.video import decode_frames
from tiva_bench.reports.stats_summary import per_clip_values, unique_labels

MEL_SR, MEL_N_FFT, MEL_HOP, MEL_BANDS, MEL_FMAX = 16000, 1024, 160, 64, 8000.0
DB_RANGE = 80.0
CMAP = "magma"
_STYLE = {
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "axes.linewidth": 0.6,
    "lines.linewidth": 1.0, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
    "axes.spines.top": False, "axes.spines.right": False, "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42, "ps.fonttype": 42,
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def publication_style():
    """rcParams for print: 8-pt DejaVu Sans, thin axes, TrueType fonts embedded in PDF."""
    plt = _pyplot()
    with plt.rc_context(_STYLE):
        yield plt


def _horizontal() -> dict:
    """Horizontal boxes: ``orientation`` from matplotlib 3.10, ``vert`` before (deprecated after)."""
    import matplotlib

    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def save_figure(fig, out_base: str | Path, dpi: int = 300) -> list[Path]:
    """Write ``out_base.png`` and ``out_base.pdf`` (parent folders made); closes the figure."""
    out_base = Path(out_base)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_base.with_suffix(".png"), out_base.with_suffix(".pdf")]
    try:
        for p in paths:
            fig.savefig(p, dpi=dpi)
    finally:
        _pyplot().close(fig)
    return paths


def mel_db(wav: np.ndarray, sr: int = MEL_SR, n_fft: int = MEL_N_FFT, hop: int = MEL_HOP, n_mels: int = MEL_BANDS, fmax: float = MEL_FMAX) -> np.ndarray:
    """Mel power spectrogram in dB re the maximum (``0`` at the peak, floor ``-DB_RANGE``), shape
    ``(n_mels, 1 + len(wav) // hop)``, low frequencies in row 0. ``wav``: mono float at ``sr`` Hz.
    Digital silence gives an all ``-DB_RANGE`` image."""
    import librosa

    wav = np.asarray(wav, dtype=np.float32)
    power = librosa.feature.melspectrogram(y=wav, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmax=fmax, power=2.0)
    peak = float(power.max()) if power.size else 0.0
    if peak <= 0:
        return np.full(power.shape, -DB_RANGE, dtype=np.float32)
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-20) / peak), -DB_RANGE).astype(np.float32)


def load_window(path: str | Path, sr: int = MEL_SR, window_s: float = 8.0) -> np.ndarray:
    """The scored window of an audio or video file, mono at ``sr`` (zero-padded like the scorer)."""
    return AudioClip.load(path, window_s).at(sr)


def colourise(image: np.ndarray, vmin: float, vmax: float, cmap: str = CMAP) -> np.ndarray:
    """``(H, W)`` floats -> ``(H, W, 3)`` uint8 through a matplotlib colour map, row 0 at the top."""
    from matplotlib import colormaps

    scaled = np.clip((np.asarray(image, np.float64) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    rgba = colormaps[cmap](scaled)
    return (rgba[..., :3] * 255 + 0.5).astype(np.uint8)


def write_mel_png(mel: np.ndarray, path: str | Path, height: int = 128, width: int | None = None) -> Path:
    """A bare spectrogram image (low frequencies at the bottom) as PNG, written atomically.

    ``mel`` in dB as ``mel_db`` returns; resized to ``height`` x ``width`` pixels (width defaults to
    the frame count). Milliseconds per image, so a report can show thousands.
    """
    import io

    from PIL import Image

    rgb = colourise(np.asarray(mel)[::-1], -DB_RANGE, 0.0)
    img = Image.fromarray(rgb)
    img = img.resize((width or img.width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return atomic_write_bytes(path, buf.getvalue())


def _show_mel(ax, mel: np.ndarray, hop_s: float, label: str | None = None) -> None:
    n_frames = mel.shape[1]
    ax.imshow(mel, origin="lower", aspect="auto", cmap=CMAP, vmin=-DB_RANGE, vmax=0.0, extent=(0, n_frames * hop_s, 0, mel.shape[0]),
              interpolation="nearest")
    ax.set_yticks([])
    if label:
        ax.set_ylabel(label, rotation=0, ha="right", va="center")


def plot_mel_grid(columns: Sequence[dict], out_base: str | Path, sr: int = MEL_SR, hop: int = MEL_HOP, title: str | None = None) -> list[Path]:
    """Figure 4 (``mel_grid_figure``) written to ``out_base.png`` and ``out_base.pdf``."""
    with publication_style():
        return save_figure(mel_grid_figure(columns, sr, hop, title), out_base)


def mel_grid_figure(columns: Sequence[dict], sr: int = MEL_SR, hop: int = MEL_HOP, title: str | None = None):
    """Figure 4: one column per clip, panels stacked top to bottom; returns the matplotlib figure.

    Each column is ``{"title": str, "rows": [(label, mel_db array (n_mels, frames)), ...],
    "frames": optional uint8 (H, W, 3) strip of video frames, "layout": optional (M, C) array}``;
    the first row is the reference by convention. Every column must have the same row labels (the
    same systems). The layout is drawn with time along x (its first axis) and its C channels as rows.
    """
    if not columns:
        raise ConfigError("no clip to draw", "name clips with --clips a,b (see per_clip.csv for names)")
    labels = [lab for lab, _ in columns[0]["rows"]]
    for col in columns:
        if [lab for lab, _ in col["rows"]] != labels:
            raise ConfigError(f"clip {col.get('title')!r} has rows {[lab for lab, _ in col['rows']]}, expected {labels}")
    has_frames = any(c.get("frames") is not None for c in columns)
    has_layout = any(c.get("layout") is not None for c in columns)
    n_rows = len(labels) + int(has_frames) + int(has_layout)
    hop_s = hop / sr
    from matplotlib.ticker import MaxNLocator

    with publication_style() as plt:
        ratios = ([0.9] if has_frames else []) + [1.0] * len(labels) + ([0.5] if has_layout else [])
        fig, axes = plt.subplots(n_rows, len(columns), figsize=(1.9 * len(columns) + 0.9, 0.62 * sum(ratios) + 0.5), squeeze=False,
                                 gridspec_kw={"height_ratios": ratios, "hspace": 0.12, "wspace": 0.06})
        for j, col in enumerate(columns):
            r = 0
            duration = max(m.shape[1] for _, m in col["rows"]) * hop_s
            axes[0, j].set_title(col.get("title", ""))
            if has_frames:
                ax = axes[r, j]
                if col.get("frames") is not None:
                    ax.imshow(col["frames"], aspect="auto", extent=(0, duration, 0, 1))
                ax.set_axis_off()
                r += 1
            for label, mel in col["rows"]:
                _show_mel(axes[r, j], mel, hop_s, label if j == 0 else None)
                axes[r, j].set_xlim(0, duration)
                r += 1
            if has_layout:
                ax = axes[r, j]
                lay = col.get("layout")
                if lay is not None:
                    lay = np.asarray(lay, np.float64)
                    ax.imshow(lay.T, origin="lower", aspect="auto", cmap="viridis", extent=(0, duration, 0, lay.shape[1]), interpolation="nearest")
                ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel("layout", rotation=0, ha="right", va="center")
                r += 1
            for i in range(n_rows):
                axes[i, j].xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
                if i < n_rows - 1:
                    axes[i, j].tick_params(labelbottom=False)
            axes[n_rows - 1, j].set_xlabel("time (s)")
        if title:
            fig.suptitle(title)
        return fig


def frames_strip(video: str | Path, n: int = 6, window_s: float = 8.0, height: int = 72) -> np.ndarray:
    """``n`` evenly spaced frames of the first ``window_s`` seconds side by side, uint8 ``(height, n*w, 3)``."""
    from PIL import Image

    fps = max(n / max(window_s, 1e-3), 0.1)
    got = decode_frames(video, fps=fps, duration_s=window_s, max_side=256).frames[:n]
    if len(got) == 0:
        raise InputError(video, "no frame decoded")
    tiles = []
    for frame in got:
        img = Image.fromarray(frame)
        w = max(1, round(img.width * height / img.height))
        tiles.append(np.asarray(img.resize((w, height), Image.Resampling.BILINEAR)))
    return np.concatenate(tiles, axis=1)


def load_layout(gen_path: str | Path) -> np.ndarray | None:
    """The predicted audio layout saved beside a generated file (``<stem>.layout.npy``), if any."""
    p = Path(gen_path)
    p = p.with_name(p.stem + ".layout.npy")
    if not p.exists():
        return None
    arr = np.load(p, allow_pickle=False)
    return arr if arr.ndim == 2 and np.all(np.isfinite(arr)) else None


def video_for_reference(ref_path: str | Path) -> Path | None:
    """A video file for a reference: the reference itself, or a video beside it with its stem."""
    ref = Path(ref_path)
    if ref.suffix.lower() in VIDEO_EXTENSIONS and ref.exists():
        return ref
    return next((c for c in (ref.with_suffix(e) for e in VIDEO_EXTENSIONS) if c.exists()), None)


def mel_grid_from_results(results_list: list[dict], clips: Sequence[str], out_base: str | Path, window_s: float | None = None,
                          frames: bool = True, layouts: bool = True) -> list[Path]:
    """Figure 4 for ``clips`` from loaded results: reference (from the first system that scored the
    clip), then each system's generated audio; frames when a video is found; the predicted layout
    where a ``<stem>.layout.npy`` sits beside a system's output (the first such system)."""
    labels = unique_labels(results_list)
    columns = []
    for clip in clips:
        rows_by_system = {lab: next((r for r in res.get("per_clip", []) if r["clip"] == clip), None) for lab, res in zip(labels, results_list)}
        found = {lab: r for lab, r in rows_by_system.items() if r is not None}
        if not found:
            known = sorted({r["clip"] for res in results_list for r in res.get("per_clip", [])})
            raise ConfigError(f"clip {clip!r} is in no results file", f"choose from: {', '.join(known[:10])}{' ...' if len(known) > 10 else ''}")
        missing = [lab for lab in labels if lab not in found]
        if missing:
            raise ConfigError(f"clip {clip!r} was not scored for {', '.join(missing)}", "choose a clip every system scored")
        first = next(iter(found.values()))
        res0 = results_list[0]
        win = window_s if window_s is not None else float(res0.get("config", {}).get("audio", {}).get("window_s", 8.0) or 0.0)
        rows = [("reference", mel_db(load_window(first["ref"], MEL_SR, win)))]
        rows += [(lab, mel_db(load_window(found[lab]["gen"], MEL_SR, win))) for lab in labels]
        col = {"title": clip, "rows": rows}
        video = video_for_reference(first["ref"]) if frames else None
        if video is not None:
            col["frames"] = frames_strip(video, window_s=win or 8.0)
        if layouts:
            col["layout"] = next((lay for lay in (load_layout(found[lab]["gen"]) for lab in labels) if lay is not None), None)
        columns.append(col)
    return plot_mel_grid(columns, out_base)


def plot_metric_distributions(results_list: list[dict], out_base: str | Path, metrics: list[str] | None = None) -> list[Path]:
    """``metric_distributions_figure`` written to ``out_base.png`` and ``out_base.pdf``."""
    with publication_style():
        return save_figure(metric_distributions_figure(results_list, metrics), out_base)


def metric_distributions_figure(results_list: list[dict], metrics: list[str] | None = None):
    """Per-clip values, one panel per metric: a box and the clips as points for each system, with the
    mean (diamond) and its interval (``ci_low``/``ci_high`` when the results carry them)."""
    labels = unique_labels(results_list)
    names = metrics or [n for n in results_list[0].get("metrics", {}) if any(per_clip_values(r, n) for r in results_list)
                        and any(math.isfinite(v) for r in results_list for v in per_clip_values(r, n).values())]
    if not names:
        raise ConfigError("no metric with per-clip values in these results", "set metrics (FAD, KL, IS) have no per-clip distribution")
    n_cols = min(3, len(names))
    n_rows = math.ceil(len(names) / n_cols)
    rng = np.random.default_rng(0)  # jitter only
    with publication_style() as plt:
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 0.25 * len(labels) * n_rows + 0.9 * n_rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            data, means = [], []
            for res in results_list:
                v = np.array([x for x in per_clip_values(res, name).values() if math.isfinite(x)])
                data.append(v)
            positions = np.arange(len(labels))[::-1]
            ax.boxplot([d if d.size else [np.nan] for d in data], positions=positions, widths=0.55, showfliers=False, **_horizontal(),
                       medianprops={"color": "0.2"}, boxprops={"color": "0.5"}, whiskerprops={"color": "0.5"}, capprops={"color": "0.5"})
            for pos, d, res in zip(positions, data, results_list):
                if d.size:
                    ax.scatter(d, pos + rng.uniform(-0.18, 0.18, d.size), s=4, alpha=0.5, color="C0", linewidths=0)
                    m = res["metrics"].get(name, {})
                    mean = float(d.mean())
                    lo, hi = m.get("ci_low"), m.get("ci_high")
                    if lo is not None and hi is not None:
                        ax.errorbar([mean], [pos], xerr=[[mean - lo], [hi - mean]], fmt="D", color="C3", ms=3, capsize=2, lw=0.8)
                    else:
                        ax.plot([mean], [pos], "D", color="C3", ms=3)
            ax.set_yticks(positions)
            ax.set_yticklabels(labels)
            info = results_list[0]["metrics"].get(name, {})
            ax.set_title(f"{info.get('display', name)} {'↑' if info.get('higher_is_better') else '↓'}")
        for ax in list(axes.flat)[len(names):]:
            ax.set_axis_off()
        fig.tight_layout()
        return fig


def plot_layout_resolution(curves: dict[str, dict[str, list[float]]], out_base: Path) -> list[Path]:
    """``layout_resolution_figure`` written to ``out_base.with_suffix(".png")`` and ``.pdf``; returns both paths."""
    with publication_style():
        return save_figure(layout_resolution_figure(curves), Path(out_base))


def layout_resolution_figure(curves: dict[str, dict[str, list[float]]]):
    """Figure 5: training loss (left) and validation L2 (right) against step, one line per layout
    resolution. ``curves`` maps a label like ``"[102,5]"`` to ``{"train_loss": [...], "val_l2": [...],
    "step": [...]}``; ``step`` indexes ``train_loss``; ``val_l2`` is drawn at ``val_step`` when given,
    else spread evenly over the same steps. A label with text after the size (``"[102,5] Eq. 4
    layer"``) is another series: same colour as its size, its own line style."""
    if not curves:
        raise ConfigError("no curve to draw", "run `tiva-bench ablate` with a layout-resolution suite first")
    sizes: list[str] = []
    series: list[str] = []
    for label in curves:
        size, _, name = label.partition(" ")
        sizes += [size] if size not in sizes else []
        series += [name] if name not in series else []
    styles = ["-", "--", ":", "-."]
    with publication_style() as plt:
        fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(6.4, 2.3))
        for label, c in curves.items():
            size, _, name = label.partition(" ")
            style = {"color": f"C{sizes.index(size) % 10}", "linestyle": styles[series.index(name) % len(styles)]}
            loss = np.asarray(c.get("train_loss", []), np.float64)
            steps = np.asarray(c.get("step", np.arange(1, loss.size + 1)), np.float64)
            if loss.size and steps.size != loss.size:
                raise ConfigError(f"curve {label}: {loss.size} losses but {steps.size} steps")
            if loss.size:
                ax_loss.plot(steps, loss, label=label, **style)
            val = np.asarray(c.get("val_l2", []), np.float64)
            if val.size:
                vsteps = np.asarray(c.get("val_step", np.linspace(steps[0] if steps.size else 1, steps[-1] if steps.size else val.size, val.size)), np.float64)
                ax_val.plot(vsteps, val, marker="o", ms=2.5, label=label, **style)
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("training loss")
        ax_val.set_xlabel("step")
        ax_val.set_ylabel("validation L2")
        ax_loss.legend(title="layout [M,C]", frameon=False, fontsize="x-small" if len(curves) > 5 else None)
        fig.tight_layout()
        return fig


def plot_odf_curves(ref_odf: np.ndarray, systems: Iterable[tuple[str, np.ndarray]], out_base: str | Path, hop_s: float,
                    notes: dict[str, str] | None = None) -> list[Path]:
    """``odf_curves_figure`` written to ``out_base.png`` and ``out_base.pdf``."""
    with publication_style():
        return save_figure(odf_curves_figure(ref_odf, systems, hop_s, notes), out_base)


def odf_curves_figure(ref_odf: np.ndarray, systems: Iterable[tuple[str, np.ndarray]], hop_s: float, notes: dict[str, str] | None = None):
    """Onset-strength curves of each system over the reference's (one panel per system, the
    reference in grey, time in seconds = frame x ``hop_s``), each panel titled with
    ``notes[label]`` (e.g. that clip's W-dis and DTW-dis)."""
    systems = list(systems)
    if not systems:
        raise ConfigError("no system curve to draw")
    with publication_style() as plt:
        fig, axes = plt.subplots(len(systems), 1, figsize=(3.4, 0.8 * len(systems) + 0.4), squeeze=False, sharex=True)
        t_ref = np.arange(len(ref_odf)) * hop_s
        for ax, (label, odf) in zip(axes[:, 0], systems):
            ax.plot(t_ref, ref_odf, color="0.6", lw=1.2, label="reference")
            ax.plot(np.arange(len(odf)) * hop_s, odf, color="C0", lw=0.9, label=label)
            ax.set_title(f"{label}  {(notes or {}).get(label, '')}".strip(), loc="left")
            ax.set_yticks([])
        axes[-1, 0].set_xlabel("time (s)")
        fig.tight_layout()
        return fig
