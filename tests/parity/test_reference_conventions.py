"""The reference-convention switches of the metric functions, in the default tier (no reference
package needed): naive loops written from the toolkits' formulas. The parity tier checks the same
switches against torch-fidelity and audioldm_eval themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tiva_bench.metrics.functional.distribution import inception_score, kl_divergence


def _softmax(row):
    e = [math.exp(v - max(row)) for v in row]
    return [v / sum(e) for v in e]


def test_kl_eps_is_the_log_of_softmax_plus_eps():
    rng = np.random.default_rng(0)
    ref, gen = rng.normal(size=(6, 9)) * 4, rng.normal(size=(6, 9)) * 4
    want = 0.0
    for r, g in zip(ref.tolist(), gen.tolist()):
        p, q = _softmax(r), _softmax(g)
        want += sum(pi * (math.log(pi) - math.log(qi + 1e-6)) for pi, qi in zip(p, q)) / len(ref)
    assert kl_divergence(ref, gen, eps=1e-6) == pytest.approx(want, rel=1e-10)
    assert kl_divergence(ref, gen) != pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("n", [30, 37])
def test_torch_fidelity_shuffle_uses_randomstate_and_floor_boundaries(n):
    logits = np.random.default_rng(1).normal(size=(n, 7)) * 3
    order = np.random.RandomState(2020).permutation(n)
    scores = []
    for i in range(10):
        rows = [_softmax(logits[j].tolist()) for j in order[i * n // 10:(i + 1) * n // 10]]
        marginal = [sum(col) / len(rows) for col in zip(*rows)]
        kl = sum(sum(p * (math.log(p) - math.log(m)) for p, m in zip(row, marginal)) for row in rows) / len(rows)
        scores.append(math.exp(kl))
    mean = sum(scores) / 10
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / 10)
    assert inception_score(logits, splits=10, seed=2020, shuffle="torch-fidelity") == pytest.approx((mean, std), rel=1e-10)
    with pytest.raises(ValueError):
        inception_score(logits, shuffle="torch")
