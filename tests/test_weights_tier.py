"""The ``weights`` tier: run with ``pytest -m weights`` after ``tiva-bench weights download ...``
(or with ``TIVA_BENCH_WEIGHTS=/folder/with/checkpoints``). Each test skips when its files are
absent. They check the published hashes, that every backbone loads strictly, and behaviour that
must hold with real weights on generated clips (identical sets give FAD 0, a copy's KL is 0,
embeddings are finite and batch-independent, a 440-Hz tone and white noise are told apart).
"""

from __future__ import annotations

import numpy as np
import pytest

from tiva_bench.core.weights import CHECKPOINTS, WEIGHTS

pytestmark = pytest.mark.weights


def needs(*names):
    missing = [n for n in names if WEIGHTS.find(n) is None]
    return pytest.mark.skipif(bool(missing), reason=f"weights not on disk: {', '.join(missing)}")


@pytest.mark.parametrize("name", [c.name for c in CHECKPOINTS if c.hash_kind])
def test_published_hashes(name):
    if WEIGHTS.find(name) is None:
        pytest.skip(f"{name} not on disk")
    ok, message = WEIGHTS.verify(name)
    assert ok, message


def clips(sr: int, n: int = 6) -> np.ndarray:
    t = np.arange(8 * sr) / sr
    rng = np.random.default_rng(0)
    tones = [0.3 * np.sin(2 * np.pi * f * t) for f in (220, 440, 880)]
    noises = [0.1 * rng.standard_normal(t.size) for _ in range(n - 3)]
    return np.stack(tones + noises).astype(np.float32)


@pytest.mark.parametrize("backbone, weights", [("vggish", ("vggish",)), ("panns", ("panns_cnn14_16k",)), ("passt", ("passt",)),
                                                ("melception", ("melception", "melception_stats")), ("imagebind", ("imagebind_huge",))])
def test_backbone_behaviour_with_real_weights(backbone, weights):
    if any(WEIGHTS.find(w) is None for w in weights):
        pytest.skip(f"weights not on disk: {weights}")
    from tiva_bench.metrics import frechet_distance, kl_divergence
    from tiva_bench.metrics.extractors import get_extractor

    ex = get_extractor(backbone, batch_size=3).load()
    x = clips(ex.spec.sample_rate)
    out = ex(x)
    emb = out["embedding"].reshape(len(x), -1, out["embedding"].shape[-1]).mean(axis=1)
    assert np.isfinite(emb).all()
    again = ex(x[::-1])["embedding"][::-1]
    np.testing.assert_allclose(out["embedding"], again, rtol=1e-3, atol=1e-4)
    tone, noise = emb[:3], emb[3:]
    within = np.linalg.norm(tone[0] - tone[1])
    across = np.linalg.norm(tone.mean(0) - noise.mean(0))
    assert across > 0.5 * within
    flat = out["embedding"].reshape(-1, out["embedding"].shape[-1])
    assert frechet_distance(flat, flat) == pytest.approx(0.0, abs=1e-3)
    if "logits" in out:
        assert kl_divergence(out["logits"], out["logits"]) == pytest.approx(0.0, abs=1e-6)
