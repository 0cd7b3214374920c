"""The metric registry: names, table headers, directions, and what each metric needs.

Clip metrics are computed per (generated, reference) pair and averaged over the set; metrics
that are computed together (``onset_acc`` and ``onset_ap``) share a ``group`` so the work is done
once per pair. A group function receives two callables ``gen_at(sr)`` / ``ref_at(sr)`` returning
the windowed mono waveform at ``sr`` Hz (decoded once, resampled once per rate by the caller) and
the resolved config, and returns ``{metric_name: value}``. It raises ``UndefinedMetric`` when no
value of the group exists for the pair, or puts an ``UndefinedMetric`` instance in place of the one
value that does not exist (W-dis on a silent clip, while DTW-dis is still defined).

Set metrics (FAD, KL, IS, class agreement, ImageBind score) are computed once per set from
cached extractor outputs. Each declares the inputs it reads (``inputs``: "gen" and "ref" are the
extractor's outputs on the generated and reference audio, "video" its outputs on the clips'
videos, "labels" the reference class labels where known) and holds its own ``compute`` callable,
which receives ``SetInputs`` and returns ``(value, std)``; the orchestration gathers the declared
inputs from the feature cache and knows nothing metric-specific.

Adding a clip metric: one function in ``tiva_bench.metrics.functional``, one group function here, one
``MetricSpec`` line, one test against an independent reference.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tiva_bench.metrics.functional.common import UndefinedMetric
from tiva_bench.metrics.functional.distribution import frechet_distance, inception_score, kl_divergence, kl_divergence_sigmoid
from tiva_bench.metrics.functional.similarity import cosine_similarity_score
from tiva_bench.metrics.functional.onsets import onset_metrics
from tiva_bench.metrics.functional.sync import dtw_dis_from_odf, energy_l1_from_wav, onset_strength, w_dis_from_odf
from tiva_bench.core.registry import Registry

WaveAt = Callable[[int], np.ndarray]
CLIP_LEVEL, SET_LEVEL = "clip", "set"


@dataclass(frozen=True)
class MetricSpec:
    """One metric as users see it.

    name: the key in results and ``per_clip.csv``; display: the table header; needs: what must be
    supplied; group: the group function computing it; paper: where the definition comes from.
    """

    name: str
    display: str
    higher_is_better: bool
    level: str
    needs: str
    group: str
    description: str
    extractor: str = ""  # set metrics: the backbone whose outputs they use
    table_scale: float = 1.0  # tables show value x table_scale (the ImageBind score x100, as papers do)
    inputs: tuple[str, ...] = ()  # set metrics: what compute() reads ("gen", "ref", "video", "labels")
    compute: Callable | None = None  # set metrics: SetInputs -> (value, std)

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


METRICS: Registry[MetricSpec] = Registry("metric")
GROUPS: Registry[Callable[[WaveAt, WaveAt, Any], dict[str, float]]] = Registry("metric group")


def _sync_group(gen_at: WaveAt, ref_at: WaveAt, cfg: Any) -> dict[str, float | UndefinedMetric]:
    """W-dis and DTW-dis share the two onset-strength curves."""
    s = cfg.sync
    gen_odf = onset_strength(gen_at(s.sample_rate), s.sample_rate, s.hop_length, s.n_fft, s.n_mels, s.odf_impl)
    ref_odf = onset_strength(ref_at(s.sample_rate), s.sample_rate, s.hop_length, s.n_fft, s.n_mels, s.odf_impl)
    out: dict[str, float | UndefinedMetric] = {"dtw_dis": dtw_dis_from_odf(gen_odf, ref_odf, s.dtw, s.fastdtw_radius)}
    try:
        out["w_dis"] = w_dis_from_odf(gen_odf, ref_odf, s.silent_policy)
    except UndefinedMetric as exc:  # keep DTW-dis, record why W-dis is missing
        out["w_dis"] = exc
    return out


def _onset_group(gen_at: WaveAt, ref_at: WaveAt, cfg: Any) -> dict[str, float]:
    o = cfg.onset
    acc, ap = onset_metrics(gen_at(o.sample_rate), ref_at(o.sample_rate), o.sample_rate, o.delta, o.tolerance_s, o.conf_window_s, o.nms_window_s, o.nms_reference)
    return {"onset_acc": acc, "onset_ap": ap}


def _energy_group(gen_at: WaveAt, ref_at: WaveAt, cfg: Any) -> dict[str, float]:
    e = cfg.energy
    return {"energy_l1": energy_l1_from_wav(gen_at(e.sample_rate), ref_at(e.sample_rate), e.frame_length, e.hop_length)}


GROUPS.register("sync", _sync_group)
GROUPS.register("onset", _onset_group)
GROUPS.register("energy", _energy_group)

for _spec in (
    MetricSpec("w_dis", "W-dis", False, "clip", "generated + reference audio", "sync",
               "1-D Wasserstein distance between onset-strength curves (frames of 80 ms), TiVA Sec. 4.1.3"),
    MetricSpec("dtw_dis", "DTW-dis", False, "clip", "generated + reference audio", "sync",
               "exact DTW cost between onset-strength curves / number of frames, TiVA Sec. 4.1.3"),
    MetricSpec("onset_acc", "Onset Acc", True, "clip", "generated + reference audio", "onset",
               "share of reference onsets hit by a generated onset within 0.1 s (CondFoleyGen)"),
    MetricSpec("onset_ap", "Onset AP", True, "clip", "generated + reference audio", "onset",
               "average precision of generated onsets against reference onsets (CondFoleyGen)"),
    MetricSpec("energy_l1", "Energy L1", False, "clip", "generated + reference audio", "energy",
               "mean |difference| of peak-normalised RMS envelopes (80 ms frames)"),
):
    METRICS.register(_spec.name, dataclasses.replace(_spec, compute=GROUPS.get(_spec.group)))


@dataclass
class SetInputs:
    """What a set metric reads, row-aligned over the clips that have every declared input.

    gen / ref / video: output name -> array ``(N, ...)`` of the metric's extractor; labels: class
    indices ``(N,)`` or None when not every clip has a known class; classes: the extractor's class
    names (for labels).
    """

    gen: dict[str, np.ndarray] = field(default_factory=dict)
    ref: dict[str, np.ndarray] = field(default_factory=dict)
    video: dict[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None


def _fad(x: SetInputs) -> tuple[float, float]:
    """Embeddings ``(N, d)``, or ``(N, E, d)`` for per-example backbones (VGGish): all examples pooled."""
    g, r = x.gen["embedding"], x.ref["embedding"]
    return frechet_distance(g.reshape(-1, g.shape[-1]), r.reshape(-1, r.shape[-1])), float("nan")


def _kl(x: SetInputs) -> tuple[float, float]:
    return kl_divergence(x.ref["logits"], x.gen["logits"]), float("nan")


def _kl_sigmoid(x: SetInputs) -> tuple[float, float]:
    return kl_divergence_sigmoid(x.ref["logits"], x.gen["logits"]), float("nan")


def _is(x: SetInputs) -> tuple[float, float]:
    """On logits without the bias where the backbone gives them (Melception), as SpecVQGAN does."""
    return inception_score(x.gen.get("logits_unbiased", x.gen["logits"]), splits=10, seed=0)


def _class_agreement(x: SetInputs) -> tuple[float, float]:
    """Share of clips whose generated audio gets the clip's class; the class is the video's label
    where every clip has one, else the classifier's prediction on the reference audio (warned)."""
    if x.labels is not None:
        target = x.labels
    else:
        warnings.warn("reference classes taken from the classifier's prediction on the reference audio (no <ref>.json class for every clip)")
        target = x.ref["logits"].argmax(axis=1)
    return float(np.mean(x.gen["logits"].argmax(axis=1) == target)), float("nan")


def _imagebind(x: SetInputs) -> tuple[float, float]:
    """Mean cosine similarity between each video's embedding and its generated audio's."""
    return cosine_similarity_score(x.gen["embedding"], x.video["embedding"]), float("nan")


SET_KINDS: dict[str, tuple[Callable[[SetInputs], tuple[float, float]], tuple[str, ...]]] = {
    "fad": (_fad, ("gen", "ref")),
    "kl": (_kl, ("gen", "ref")),
    "kl_sigmoid": (_kl_sigmoid, ("gen", "ref")),
    "is": (_is, ("gen",)),
    "class_agreement": (_class_agreement, ("gen", "ref", "labels")),
    "imagebind": (_imagebind, ("gen", "video")),
}


def register_quality_metrics(backbone: str, extractor: str, label: str, kinds: tuple[str, ...] = ("fad", "kl", "is")) -> None:
    """Register ``fad_<backbone>``, ``kl_<backbone>``, ``is_<backbone>`` over one extractor.

    ``label`` is the table suffix, e.g. "mel." gives "FAD mel." like the paper's headers.
    """
    texts = {
        "fad": ("FAD", False, "Frechet distance between embedding Gaussians of generated and reference sets"),
        "kl": ("KL", False, "mean paired KL(softmax(ref logits) || softmax(gen logits))"),
        "kl_sigmoid": ("KL-sig", False, "mean paired multi-label (sigmoid) KL term"),
        "is": ("IS", True, "Inception Score of generated logits, 10 splits"),
    }
    for kind in kinds:
        display, higher, desc = texts[kind]
        compute, inputs = SET_KINDS[kind]
        METRICS.register(f"{kind}_{backbone}", MetricSpec(
            f"{kind}_{backbone}", f"{display} {label}", higher, "set", f"audio + {extractor} backbone", kind, desc, extractor,
            inputs=inputs, compute=compute))


register_quality_metrics("synth", "synth_classifier", "syn.")
register_quality_metrics("synth2", "synth_classifier_v2", "syn2.")  # synthetic benchmark v2 (7 classes)
register_quality_metrics("melception", "melception", "mel.")
register_quality_metrics("vggish", "vggish", "vgg.", kinds=("fad",))
register_quality_metrics("passt", "passt", "pas.")
register_quality_metrics("panns", "panns", "pann.")
METRICS.register("imagebind_score", MetricSpec(
    "imagebind_score", "IB-score", True, "set", "generated audio + the videos (--videos DIR, or videos as references) + imagebind_huge",
    "imagebind", "mean cosine similarity of ImageBind embeddings of each video and its generated audio (tables: x100)",
    "imagebind", table_scale=100.0, inputs=SET_KINDS["imagebind"][1], compute=SET_KINDS["imagebind"][0]))
for _name, _display, _extractor, _bench in (("class_acc", "Class Acc", "synth_classifier", "synthetic benchmark v1"),
                                            ("class_acc2", "Class Acc2", "synth_classifier_v2", "synthetic benchmark v2")):
    METRICS.register(_name, MetricSpec(
        _name, _display, True, "set", f"audio + {_extractor}; labels from <ref>.json or reference audio",
        "class_agreement", f"share of clips whose generated audio is classified as the video's class ({_bench})",
        _extractor, inputs=SET_KINDS["class_agreement"][1], compute=SET_KINDS["class_agreement"][0]))


# The metrics over the synthetic classifier, per synthetic benchmark version: v2 has its own
# classifier (7 classes), so its columns are these metrics' ``2`` twins.
SYNTHETIC_V2_METRICS = {"fad_synth": "fad_synth2", "kl_synth": "kl_synth2", "is_synth": "is_synth2", "class_acc": "class_acc2"}


def synthetic_metrics_for(names: list[str], version: int) -> list[str]:
    """``names`` with the synthetic-classifier metrics swapped for those of benchmark ``version``
    (1: unchanged; 2: ``fad_synth`` -> ``fad_synth2`` ...); every other metric unchanged."""
    if version == 1:
        return list(names)
    if version == 2:
        return [SYNTHETIC_V2_METRICS.get(n, n) for n in names]
    raise ValueError(f"synthetic benchmark version must be 1 or 2, got {version!r}")


def resolve_metrics(names: list[str]) -> list[MetricSpec]:
    """Specs for ``names`` in the given order (unknown names raise with did-you-mean)."""
    seen: dict[str, MetricSpec] = {}
    for name in names:
        seen.setdefault(name, METRICS.get(name))
    return list(seen.values())
