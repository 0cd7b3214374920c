"""Onset accuracy and onset AP (the CondFoleyGen / SyncFusion definitions, made strict).

Pipeline for one (generated, reference) pair at ``sr`` Hz:

1. onsets of both: ``librosa.onset.onset_detect(y=..., sr=sr, units="samples", delta=0.3)``;
2. confidence of a generated onset: peak of the min-max normalised ``|gen|`` within
   ``+-conf_window_s`` (window clipped at the signal's ends);
3. non-maximum suppression: highest confidence first, dropping every other onset closer than
   ``nms_window_s`` -- on the generated onsets, and by default on the reference onsets too
   (confidence from ``|ref|``), so identical audio scores 1;
4. greedy matching in reference order: a reference onset is hit by the unused generated onset
   strictly within ``tolerance_s`` whose normalised ``|gen|`` at the onset sample is largest;
5. ``onset_acc`` = hits / reference onsets; ``onset_ap`` = average precision over the ranked
   generated onsets (a match is a true positive scored by its confidence, an unmatched generated
   onset a false positive), with the number of positives = all reference onsets: a missed
   reference onset is a positive that is never retrieved, so it lowers recall at every threshold.

Differences from the original scripts, on purpose: every missed reference onset is counted in
the AP (the original stops adding misses once the generated onsets run out, and otherwise ranks a
miss as a positive with score 0, so that an output with no onsets at all scores AP 1 -- here it
scores 0); the reference onsets get the same NMS as the generated ones (the original leaves
them raw, so two reference onsets closer than the NMS window can never both be hit and even a
perfect copy scores below 1; ``nms_reference=False`` restores that);
the NMS removes every neighbour inside the window (the original mutates a list while iterating
over it and can keep some); windows near the start are clipped instead of wrapping around; with
no reference onsets both values are undefined (NaN with a reason) rather than 0.
"""

from __future__ import annotations

import numpy as np

from tiva_bench.metrics.functional.common import UndefinedMetric


def detect_onsets(y: np.ndarray, sr: int, delta: float = 0.3) -> np.ndarray:
    """Onset positions in samples (int64, increasing); empty for silent input."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.size == 0 or not np.any(y):
        return np.zeros(0, dtype=np.int64)
    onsets = librosa.onset.onset_detect(y=y, sr=sr, units="samples", delta=delta)
    return np.asarray(onsets, dtype=np.int64)


def _normalised_magnitude(wav: np.ndarray) -> np.ndarray:
    mag = np.abs(np.asarray(wav, dtype=np.float64))
    lo, hi = mag.min(), mag.max()
    return (mag - lo) / (hi - lo) if hi > lo else np.zeros_like(mag)


def onset_confidence(wav: np.ndarray, onsets: np.ndarray, half_window: int) -> np.ndarray:
    """Peak of min-max normalised ``|wav|`` in ``[o - half_window, o + half_window)`` per onset."""
    mag = _normalised_magnitude(wav)
    out = np.empty(len(onsets))
    for k, o in enumerate(onsets):
        lo, hi = max(0, int(o) - half_window), min(mag.size, int(o) + half_window)
        out[k] = mag[lo:hi].max() if hi > lo else 0.0
    return out


def onset_nms(onsets: np.ndarray, confidence: np.ndarray, window: int) -> np.ndarray:
    """Keep onsets greedily by decreasing confidence, dropping others closer than ``window``.

    Returns the kept onsets sorted by time. Ties in confidence: the later onset goes first.
    """
    onsets = np.asarray(onsets, dtype=np.int64)
    order = np.argsort(np.asarray(confidence), kind="stable")[::-1]
    alive = np.ones(len(onsets), dtype=bool)
    kept = []
    for idx in order:
        if not alive[idx]:
            continue
        kept.append(onsets[idx])
        alive &= np.abs(onsets - onsets[idx]) >= window
    return np.sort(np.asarray(kept, dtype=np.int64))


def average_precision(y_true: np.ndarray, scores: np.ndarray, n_positives: int | None = None) -> float:
    """Average precision, sum over distinct thresholds of (R_k - R_{k-1}) * P_k.

    With ``n_positives=None`` this is ``sklearn.metrics.average_precision_score`` (no
    interpolation). ``n_positives`` larger than ``sum(y_true)`` adds positives that are never
    retrieved: recall is divided by ``n_positives``, so AP shrinks by ``sum(y_true)/n_positives``.
    Raises ``UndefinedMetric`` when there is no positive at all.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    total = float(y_true.sum()) if n_positives is None else float(n_positives)
    if total <= 0:
        raise UndefinedMetric("no positive labels (no reference onsets)")
    if y_true.sum() > total:
        raise ValueError("n_positives is smaller than the number of positive labels")
    if y_true.size == 0 or y_true.sum() == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y_true[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(t)[last_of_threshold]
    fp = np.cumsum(1 - t)[last_of_threshold]
    precision = tp / (tp + fp)
    recall = tp / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def match_onsets(ref_onsets: np.ndarray, gen_onsets: np.ndarray, gen_wav: np.ndarray, tolerance: int, half_window: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Greedy matching (see module docstring).

    Returns ``(hits, labels, scores)`` with one entry per generated onset: label 1 if it matched
    a reference onset, 0 otherwise; score = its confidence.
    """
    mag = _normalised_magnitude(gen_wav)
    conf = onset_confidence(gen_wav, gen_onsets, half_window)
    unused = list(range(len(gen_onsets)))
    labels = np.zeros(len(gen_onsets))
    for r in ref_onsets:
        candidates = [k for k in unused if abs(int(gen_onsets[k]) - int(r)) < tolerance]
        if not candidates:
            continue
        # largest |gen| at the onset sample; ties: the one closest in time
        best = max(candidates, key=lambda k: (mag[min(int(gen_onsets[k]), mag.size - 1)], -abs(int(gen_onsets[k]) - int(r))))
        labels[best] = 1.0
        unused.remove(best)
    return int(labels.sum()), labels, conf


def onset_metrics(gen: np.ndarray, ref: np.ndarray, sr: int = 22050, delta: float = 0.3, tolerance_s: float = 0.1, conf_window_s: float = 0.05, nms_window_s: float = 0.05, nms_reference: bool = True) -> tuple[float, float]:
    """``(onset_acc, onset_ap)`` for one pair of waveforms at ``sr``.

    Raises ``UndefinedMetric`` when the reference has no detectable onsets.
    """
    half, nms_window = int(conf_window_s * sr), int(nms_window_s * sr)
    ref_onsets = detect_onsets(ref, sr, delta)
    if ref_onsets.size == 0:
        raise UndefinedMetric("reference has no detectable onsets")
    if nms_reference:
        ref_onsets = onset_nms(ref_onsets, onset_confidence(ref, ref_onsets, half), nms_window)
    gen_onsets = detect_onsets(gen, sr, delta)
    if gen_onsets.size:
        gen_onsets = onset_nms(gen_onsets, onset_confidence(gen, gen_onsets, half), nms_window)
    hits, labels, scores = match_onsets(ref_onsets, gen_onsets, gen, int(tolerance_s * sr), half)
    return hits / ref_onsets.size, average_precision(labels, scores, n_positives=ref_onsets.size)
