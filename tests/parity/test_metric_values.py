"""FD, KL, IS and the ImageBind score computed by the reference toolkits' own functions on the same
vectors as tiva-bench's functions: torch-fidelity (FD statistics and distance, IS), audioldm_eval
(FAD's Frechet distance, KL), av-benchmark's IB-score formula (a torch cosine mean; av-benchmark is
on no package index, so its one-line formula is written here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.parity.helpers import require, import_without_init, record
from tiva_bench.metrics.functional.distribution import frechet_distance, inception_score, kl_divergence
from tiva_bench.metrics.functional.similarity import cosine_similarity_score

pytestmark = pytest.mark.parity
metric_fid = require("torch_fidelity.metric_fid")
metric_isc = require("torch_fidelity.metric_isc")


def _embeddings(n, d, seed):
    """Correlated, non-centred vectors (a random mixing of Gaussian sources), float32 as extractors give."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix + rng.normal(size=d)).astype(np.float32)


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.parametrize("n,d", [(400, 128), (300, 512)])
def test_frechet_distance_matches_torch_fidelity_and_audioldm_eval(n, d, monkeypatch):
    a, b = _embeddings(n, d, 0), _embeddings(n + 37, d, 1) * 1.1
    ours = frechet_distance(a, b)
    tf = metric_fid.fid_statistics_to_metric(metric_fid.fid_features_to_statistics(torch.from_numpy(a)),
                                             metric_fid.fid_features_to_statistics(torch.from_numpy(b)), verbose=False)["frechet_inception_distance"]
    fad = import_without_init(monkeypatch, "audioldm_eval.metrics.fad")
    mu = lambda x: np.mean(x.astype(np.float64), axis=0)  # noqa: E731  (audioldm_eval's own statistics recipe)
    cov = lambda x: np.cov(x.astype(np.float64), rowvar=False)  # noqa: E731
    ae = fad.FrechetAudioDistance.calculate_frechet_distance(None, mu(a), cov(a), mu(b), cov(b))
    d1 = record("metrics", f"FD (n={n}, d={d})", "torch-fidelity 0.4.0 fid_statistics_to_metric", _rel(ours, tf))
    d2 = record("metrics", f"FD (n={n}, d={d})", "audioldm-eval 0.0.3 calculate_frechet_distance", _rel(ours, ae))
    assert d1 < 1e-6 and d2 < 1e-6


def test_kl_matches_audioldm_eval_with_its_epsilon(monkeypatch):
    rng = np.random.default_rng(2)
    ref_logits = (3 * rng.normal(size=(64, 309))).astype(np.float32)
    gen_logits = (ref_logits + 2 * rng.normal(size=ref_logits.shape)).astype(np.float32)
    kl = import_without_init(monkeypatch, "audioldm_eval.metrics.kl")
    names = [f"clip{i}.wav" for i in range(len(ref_logits))]
    theirs, _, _ = kl.calculate_kl({"logits": torch.from_numpy(gen_logits), "file_path_": names},
                                   {"logits": torch.from_numpy(ref_logits), "file_path_": names}, "logits")
    want = theirs["kullback_leibler_divergence_softmax"]
    d_eps = record("metrics", "KL softmax, eps=1e-6", "audioldm-eval 0.0.3 calculate_kl", _rel(kl_divergence(ref_logits, gen_logits, eps=1e-6), want))
    d_exact = record("metrics", "KL softmax, default (exact)", "audioldm-eval 0.0.3 calculate_kl",
                     _rel(kl_divergence(ref_logits, gen_logits), want), "documented: the reference adds 1e-6 inside the log")
    assert d_eps < 1e-5          # torch float32 softmax in the reference
    assert d_exact > d_eps       # the switch is what makes the difference


@pytest.mark.parametrize("n", [100, 157])
def test_inception_score_matches_torch_fidelity(n):
    rng = np.random.default_rng(3)
    logits = (4 * rng.normal(size=(n, 527))).astype(np.float32)
    theirs = metric_isc.isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=True, rng_seed=2020)
    mean, std = inception_score(logits, splits=10, seed=2020, shuffle="torch-fidelity")
    dev = record("metrics", f"IS mean/std (n={n}, torch-fidelity shuffle)", "torch-fidelity 0.4.0 isc_features_to_metric",
                 max(_rel(mean, theirs["inception_score_mean"]), _rel(std, theirs["inception_score_std"])))
    assert dev < 1e-6
    default_mean, _ = inception_score(logits, splits=10, seed=2020)
    record("metrics", f"IS mean (n={n}, default shuffle)", "torch-fidelity 0.4.0 isc_features_to_metric",
           _rel(default_mean, theirs["inception_score_mean"]), "documented: other split membership")
    no_shuffle = metric_isc.isc_features_to_metric(torch.from_numpy(logits), splits=1, shuffle=False)["inception_score_mean"]
    assert _rel(inception_score(logits, splits=1)[0], no_shuffle) < 1e-6


def test_imagebind_score_matches_av_benchmark_formula():
    video, audio = _embeddings(50, 1024, 4), _embeddings(50, 1024, 5) + _embeddings(50, 1024, 4)
    theirs = torch.cosine_similarity(torch.from_numpy(video), torch.from_numpy(audio), dim=-1).mean().item()
    dev = record("metrics", "IB-score (cosine mean)", "av-benchmark formula (torch.cosine_similarity)", _rel(cosine_similarity_score(audio, video), theirs))
    assert dev < 1e-6
