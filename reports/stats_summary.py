"""Intervals and significance marks for results, computed from ``results.json`` contents alone.

* ``add_intervals(results)``: a 95% percentile bootstrap interval over clips for every metric with
  per-clip values (``ci_low``/``ci_high`` beside ``value``, in the metric's own units, plus a ``ci``
  record of the method, resample count and seed). Works on old results files too.
* ``set_metric_interval(set_fn, gen, ref)``: the interval of a set metric (FAD, KL, IS, ...) by
  resampling clips jointly on both sides and recomputing ``set_fn`` (default 200 resamples).
* ``compare_systems(results_list)``: for each per-clip metric, the best ranked system (by mean)
  against every other ranked system with the paired Wilcoxon signed-rank test on the clips both
  scored, Holm-corrected within the metric; systems whose difference to the best is not
  significant carry the mark ``same_as_best``.
* ``annotate(results_list)`` does both and stores the comparisons under ``metrics[m]["vs_best"]``;
  ``stats_frame`` / ``write_stats_csv`` give the long table (one row per system and metric).

Reference and sanity rows (ground truth, shuffled or shifted references, noise, silence) are
shown but never ranked: a results dict is unranked when its ``role`` is ``"reference"`` or
``"sanity"``, or when its label names one of those baselines (``UNRANKED_LABEL``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from tiva_bench.core.files import atomic_write_text
from tiva_bench.metrics.functional.stats import bootstrap_interval, bootstrap_mean_interval, frechet_bootstrap, holm, wilcoxon_signed_rank
from tiva_bench.reports.formatting import latex_escape

DEFAULT_RESAMPLES = 10_000
DEFAULT_SET_RESAMPLES = 200
FAST_FRECHET_MAX_ROWS = 6000  # the exact Gram-matrix path holds rows x rows float64 (288 MB at 6,000)
FAST_FRECHET_ROWS_PER_DIM = 1.5  # beyond ~1.5 d rows its SVD costs more than two d x d eigen-decompositions


def fast_frechet_applies(embedding: np.ndarray) -> bool:
    """True when ``set_metric_interval(..., kind="fad")`` takes the Gram-matrix path for these
    embeddings (``(N, d)`` or ``(N, E, d)``): at most ``1.5 d`` rows and ``FAST_FRECHET_MAX_ROWS``.
    Measured (docs/PROTOCOL.md): 200 resamples at 1,000 x 2048-d take 0.3 CPU-minutes this way
    against 14 by recomputing; at 5,000 clips recomputing (19 CPU-minutes) is the cheaper path."""
    e = np.asarray(embedding)
    if e.ndim not in (2, 3) or e.size == 0:
        return False
    rows = int(np.prod(e.shape[:-1]))
    return rows <= min(FAST_FRECHET_MAX_ROWS, FAST_FRECHET_ROWS_PER_DIM * e.shape[-1])
UNRANKED_ROLES = {"reference", "sanity"}
UNRANKED_LABEL = re.compile(r"^(ground[ -]truth|shuffled gt|gt shifted|noise|silence)\b", re.IGNORECASE)


def unique_labels(results_list: Iterable[dict]) -> list[str]:
    """Row labels as the tables name them: ``label`` (else ``gen_dir``), repeats suffixed " (2)"."""
    labels: list[str] = []
    for res in results_list:
        label = res.get("label") or res.get("gen_dir", "?")
        base, k = label, 2
        while label in labels:
            label, k = f"{base} ({k})", k + 1
        labels.append(label)
    return labels


def is_ranked(results: dict) -> bool:
    """False for reference and sanity rows, which tables show but never rank."""
    if results.get("role") in UNRANKED_ROLES:
        return False
    return not UNRANKED_LABEL.match(str(results.get("label") or ""))


def per_clip_values(results: dict, metric: str) -> dict[str, float]:
    """``{clip: value}`` of one metric (NaN where undefined or missing)."""
    out = {}
    for row in results.get("per_clip", []):
        v = row.get("values", {}).get(metric)
        out[row["clip"]] = math.nan if v is None else float(v)
    return out


def add_intervals(results: dict, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, confidence: float = 0.95, overwrite: bool = False) -> dict:
    """A copy of ``results`` where every metric with per-clip values carries a bootstrap interval.

    Adds ``ci_low``, ``ci_high`` (units of ``value``; NaN when no clip defines the metric) and
    ``ci = {"method": "percentile bootstrap over clips", "confidence", "n_resamples", "seed"}``.
    Set metrics (no per-clip values) keep whatever interval scoring gave them. An existing
    interval is kept unless ``overwrite``.
    """
    out = copy.deepcopy(results)
    clip_names = {name for row in out.get("per_clip", []) for name in row.get("values", {})}
    for name, m in out.get("metrics", {}).items():
        if name not in clip_names or (not overwrite and "ci_low" in m):
            continue
        values = np.array(list(per_clip_values(out, name).values()), dtype=np.float64)
        low, high = bootstrap_mean_interval(values, n_resamples, confidence, seed)
        m["ci_low"], m["ci_high"] = _json_float(low), _json_float(high)
        m["ci"] = {"method": "percentile bootstrap over clips", "confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    return out


def resample_rows(inputs: Any, idx: np.ndarray) -> Any:
    """A copy of ``inputs`` with every row-aligned array indexed by ``idx`` along its first axis.

    ``inputs``: a dataclass (such as ``metrics.registry.SetInputs``) or a dict whose values are
    arrays ``(N, ...)``, dicts of such arrays, or None (kept as is).
    """
    def take(v):
        if v is None:
            return None
        if isinstance(v, dict):
            return {k: take(x) for k, x in v.items()}
        return np.asarray(v)[idx]

    if dataclasses.is_dataclass(inputs) and not isinstance(inputs, type):
        return dataclasses.replace(inputs, **{f.name: take(getattr(inputs, f.name)) for f in dataclasses.fields(inputs)})
    return {k: take(v) for k, v in inputs.items()}


def _row_counts(inputs: Any) -> set[int]:
    values = ([getattr(inputs, f.name) for f in dataclasses.fields(inputs)] if dataclasses.is_dataclass(inputs) else list(inputs.values()))
    out: set[int] = set()
    for v in values:
        if isinstance(v, dict):
            out |= _row_counts(v)
        elif v is not None:
            out.add(len(v))
    return out


def _side(inputs: Any, name: str) -> dict:
    return (getattr(inputs, name, None) if not isinstance(inputs, dict) else inputs.get(name)) or {}


def set_metric_interval(set_fn: Callable, inputs: Any, ref: dict | None = None, labels: np.ndarray | None = None, *,
                        n_resamples: int = DEFAULT_SET_RESAMPLES, seed: int = 0, confidence: float = 0.95, kind: str | None = None) -> dict:
    """Bootstrap interval of a set metric: resample clips (the same rows of every input: generated,
    reference, video embeddings, labels) and recompute the metric on each resample.

    Two call forms: ``set_metric_interval(fn, inputs)`` with ``inputs`` a row-aligned dataclass
    (``metrics.registry.SetInputs``) or dict and ``fn(inputs) -> (value, std)``; or
    ``set_metric_interval(fn, gen, ref, labels)`` with dicts of arrays and ``fn(gen, ref, labels)``.
    ``fn`` may also return a bare float.

    ``kind="fad"`` (the Frechet distance of ``gen["embedding"]`` and ``ref["embedding"]``, shape
    ``(N, d)`` or ``(N, E, d)`` with E examples per clip pooled) takes an exact shortcut,
    ``metrics.functional.stats.frechet_bootstrap``, with the same resamples and values as
    recomputing, tens of times faster where ``fast_frechet_applies`` (up to 1.5 d rows).

    Returns ``{"ci_low", "ci_high", "ci": {"method", "confidence", "n_resamples", "seed", "failed"}}``
    to merge into the metric's record. Warnings raised while recomputing (e.g. too few samples for
    the embedding size, already reported once for the full set) are silenced. Cost: docs/PROTOCOL.md.
    """
    legacy = ref is not None
    bundle = {"gen": inputs, "ref": ref, "labels": labels} if legacy else inputs
    sizes = _row_counts(bundle)
    if len(sizes) != 1:
        raise ValueError(f"set-metric inputs disagree on the number of clips: {sorted(sizes)}")
    n = sizes.pop()
    method = "percentile bootstrap over clips, set metric recomputed"
    g_emb = np.asarray(_side(bundle, "gen").get("embedding", []))
    r_emb = np.asarray(_side(bundle, "ref").get("embedding", []))
    if kind == "fad" and g_emb.shape == r_emb.shape and fast_frechet_applies(g_emb):
        rows = int(np.prod(g_emb.shape[:-1]))
        per_clip = 1 if g_emb.ndim == 2 else g_emb.shape[1]
        low, high, failed = frechet_bootstrap(g_emb.reshape(rows, -1), r_emb.reshape(rows, -1), n_resamples, confidence, seed,
                                              clip_of_row=np.repeat(np.arange(n), per_clip))
        method += " (exact Gram-matrix form of the Frechet distance)"
    else:
        def statistic(idx: np.ndarray) -> float:
            sample = resample_rows(bundle, idx)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = set_fn(sample["gen"], sample["ref"], sample["labels"]) if legacy else set_fn(sample)
            return float(out[0] if isinstance(out, tuple) else out)

        low, high, failed = bootstrap_interval(statistic, n, n_resamples, confidence, seed)
    return {"ci_low": _json_float(low), "ci_high": _json_float(high),
            "ci": {"method": method, "confidence": confidence, "n_resamples": n_resamples, "seed": seed, "failed": failed}}


def compare_systems(results_list: list[dict], alpha: float = 0.05, metrics: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """Paired tests of every ranked system against the best one, per per-clip metric.

    Returns ``{metric: {label: {"best": bool, "p_value", "p_holm", "n_pairs", "same_as_best": bool}}}``
    for ranked systems (labels as ``unique_labels``). The best is the ranked system with the best
    mean (direction from ``higher_is_better``); the others are compared with it on the clips both
    define (Wilcoxon signed-rank, two-sided), and Holm's correction runs over those comparisons.
    ``same_as_best`` is true for the best and wherever the adjusted p-value is at least ``alpha``.
    Metrics without per-clip values, or with fewer than two ranked systems, are left out.
    """
    labels = unique_labels(results_list)
    ranked = [(lab, res) for lab, res in zip(labels, results_list) if is_ranked(res)]
    if len(ranked) < 2:
        return {}
    names = metrics or list(dict.fromkeys(n for _, res in ranked for n in res.get("metrics", {})))
    out: dict[str, dict[str, dict]] = {}
    for name in names:
        per_system = {lab: per_clip_values(res, name) for lab, res in ranked if name in res.get("metrics", {})}
        per_system = {lab: v for lab, v in per_system.items() if any(math.isfinite(x) for x in v.values())}
        if len(per_system) < 2:
            continue
        higher = bool(next(res for lab, res in ranked if lab in per_system)["metrics"][name].get("higher_is_better", False))
        means = {lab: float(np.nanmean(list(v.values()))) for lab, v in per_system.items()}
        best = (max if higher else min)(means, key=means.get)
        others = [lab for lab in per_system if lab != best]
        rows = {}
        for lab in others:
            shared = sorted(set(per_system[best]) & set(per_system[lab]))
            a = np.array([per_system[best][c] for c in shared])
            b = np.array([per_system[lab][c] for c in shared])
            test = wilcoxon_signed_rank(a, b)
            rows[lab] = {"best": False, "p_value": test["p_value"], "n_pairs": int(np.sum(np.isfinite(a) & np.isfinite(b)))}
        adjusted = holm([rows[lab]["p_value"] for lab in others])
        for lab, p in zip(others, adjusted):
            rows[lab]["p_holm"] = float(p)
            rows[lab]["same_as_best"] = bool(not (p < alpha))  # NaN (nothing to compare) counts as not different
        rows[best] = {"best": True, "p_value": math.nan, "p_holm": math.nan, "n_pairs": sum(math.isfinite(x) for x in per_system[best].values()), "same_as_best": True}
        out[name] = {lab: rows[lab] for lab in per_system}
        for row in out[name].values():
            row["test"] = "wilcoxon signed-rank vs best, Holm-corrected"
            row["alpha"] = alpha
    return out


def annotate(results_list: list[dict], n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, alpha: float = 0.05) -> list[dict]:
    """Copies of the results with intervals added and comparisons under ``metrics[m]["vs_best"]``."""
    out = [add_intervals(r, n_resamples, seed) for r in results_list]
    comparisons = compare_systems(out, alpha)
    for lab, res in zip(unique_labels(out), out):
        for name, by_label in comparisons.items():
            if lab in by_label and name in res["metrics"]:
                res["metrics"][name]["vs_best"] = {k: _json_float(v) if isinstance(v, float) else v for k, v in by_label[lab].items()}
    return out


def stats_frame(annotated: list[dict]) -> pd.DataFrame:
    """Long table: system, metric, value, ci_low, ci_high, n, p_holm, same_as_best (table scale applied
    to value and interval, as in the summary tables)."""
    rows = []
    for lab, res in zip(unique_labels(annotated), annotated):
        for name, m in res.get("metrics", {}).items():
            scale = float(m.get("table_scale", 1.0))
            vs = m.get("vs_best", {})

            def scaled(v):
                return math.nan if v is None else float(v) * scale

            rows.append({"system": lab, "metric": name, "value": scaled(m.get("value")), "ci_low": scaled(m.get("ci_low")),
                         "ci_high": scaled(m.get("ci_high")), "n": m.get("n"), "ranked": is_ranked(res),
                         "best": vs.get("best"), "p_holm": vs.get("p_holm"), "same_as_best": vs.get("same_as_best")})
    return pd.DataFrame(rows, columns=["system", "metric", "value", "ci_low", "ci_high", "n", "ranked", "best", "p_holm", "same_as_best"])


def write_stats_csv(annotated: list[dict], path: str | Path) -> Path:
    """Write ``stats_frame`` as CSV (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, stats_frame(annotated).to_csv(index=False, float_format="%.6g"))
    return path


def format_interval(value: float | None, low: float | None, high: float | None, decimals: int = 2) -> str:
    """``"3.90 [3.71, 4.08]"``; ``"--"`` for a missing value; the bracket only when both limits exist."""
    if value is None or not math.isfinite(value):
        return "--"
    text = f"{value:.{decimals}f}"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.{decimals}f}, {high:.{decimals}f}]"
    return text


def _json_float(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def render_latex_with_intervals(annotated: list[dict], metrics: list[str] | None = None, decimals: int = 2, caption: str | None = None) -> str:
    """A booktabs table whose cells read ``value$_{\\pm h}$`` (``h`` = half the 95% interval's width)
    with the best ranked value bold and ``$^\\dagger$`` on values not significantly different from it;
    unranked rows (references, sanity checks) in italics after a rule."""
    frame = stats_frame(annotated)
    names = metrics or list(dict.fromkeys(frame["metric"]))
    info = {}
    for res in annotated:
        for name, m in res.get("metrics", {}).items():
            info.setdefault(name, m)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines += [rf"\begin{{tabular}}{{l{'c' * len(names)}}}", r"\toprule"]
    heads = []
    for n in names:
        m = info.get(n, {})
        scale = float(m.get("table_scale", 1.0))
        heads.append(latex_escape(m.get("display", n) + (f" (x{scale:g})" if scale != 1.0 else "")) + (r" $\uparrow$" if m.get("higher_is_better") else r" $\downarrow$"))
    lines.append(" & ".join(["Method", *heads]) + r" \\")
    lines.append(r"\midrule")
    labels = unique_labels(annotated)
    ranked_rows = [(lab, res) for lab, res in zip(labels, annotated) if is_ranked(res)]
    other_rows = [(lab, res) for lab, res in zip(labels, annotated) if not is_ranked(res)]
    for group, rows in ((0, ranked_rows), (1, other_rows)):
        if group == 1 and rows and ranked_rows:
            lines.append(r"\midrule")
        for lab, _res in rows:
            cells = []
            for n in names:
                sel = frame[(frame["system"] == lab) & (frame["metric"] == n)]
                if sel.empty or not math.isfinite(sel["value"].iloc[0]):
                    cells.append("--")
                    continue
                r = sel.iloc[0]
                text = f"{r['value']:.{decimals}f}"
                if math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"]):
                    text += rf"$_{{\pm {(r['ci_high'] - r['ci_low']) / 2:.{decimals}f}}}$"
                if r["best"] is True:
                    text = rf"\textbf{{{text}}}"
                elif r["same_as_best"] is True:
                    text += r"$^\dagger$"
                cells.append(text)
            name = latex_escape(lab)
            lines.append(" & ".join([rf"\textit{{{name}}}" if group else name, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines.append(r"\par\smallskip{\footnotesize Subscripts: half-width of the 95\% bootstrap interval. Bold: best; $^\dagger$: not significantly different from the best (Wilcoxon signed-rank, Holm). Italic rows are not ranked.}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
