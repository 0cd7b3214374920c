"""PaSST against the way av-benchmark drives hear21passt: ``hear21passt.base.get_basic_model(mode="all")``
(its own mel front-end and network arguments), the 32-kHz waveform zero-padded or cut to 320000
samples, and the output split into 527 logits and a 768-d embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.parity.helpers import TOLERANCE, deviation, record, signals
from tiva_bench.metrics.extractors.passt import ARCH, PaSSTExtractor, build_passt

pytestmark = pytest.mark.parity
REF = "hear21passt 0.0.26 get_basic_model(mode='all'), av-benchmark's padding/split"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    _, net = build_passt()
    path = tmp_path_factory.mktemp("passt") / "passt-s-f128-p16-s10-ap.476-swa.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def reference(checkpoint, monkeypatch):
    """hear21passt's own wrapper; its network builder is only told not to download and to read
    the same file (every other argument is hear21passt's default)."""
    import hear21passt.base as base
    from hear21passt.models.passt import get_model

    def offline_get_model(**kwargs):
        net = get_model(pretrained=False, **kwargs)
        net.load_state_dict(torch.load(checkpoint, weights_only=True))
        return net

    monkeypatch.setattr(base, "get_model_passt", offline_get_model)
    model = base.get_basic_model(mode="all", arch=ARCH).eval()
    return model


def av_benchmark_drive(model, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """av-benchmark's extraction loop body: pad/cut to 320000 samples, one pass, split at 527."""
    x = torch.from_numpy(wav)[None].float()
    x = x[..., :320000] if x.size(-1) >= 320000 else torch.nn.functional.pad(x, (0, 320000 - x.size(-1)))
    with torch.inference_mode():
        out = model(x)
    return out[:, :527].numpy(), out[:, 527:].numpy()


def test_mel_front_end_matches(reference):
    ours, _ = build_passt()
    worst = 0.0
    with torch.inference_mode():
        for name, wav in signals(32000).items():
            x = torch.from_numpy(wav)[None]
            worst = max(worst, deviation(ours(x)[0].T, reference.mel(x)[0].T))
    record("PaSST", "log-mel 128 (eval mode)", REF, worst)
    assert worst < TOLERANCE


def test_logits_and_embedding_match_av_benchmark(checkpoint, reference):
    ours = PaSSTExtractor(batch_size=2).load(checkpoint=checkpoint)
    sig = signals(32000)
    names = ("tone", "short", "long", "silence")
    got = ours(np.stack([np.pad(sig[k], (0, max(0, 12 * 32000 - sig[k].size)))[: 12 * 32000] for k in names]))
    want = [av_benchmark_drive(reference, np.pad(sig[k], (0, max(0, 12 * 32000 - sig[k].size)))[: 12 * 32000]) for k in names]
    d_log = record("PaSST", "logits 527", REF, deviation(got["logits"], np.concatenate([w[0] for w in want])))
    d_emb = record("PaSST", "embedding 768-d", REF, deviation(got["embedding"], np.concatenate([w[1] for w in want])))
    assert d_log < TOLERANCE and d_emb < TOLERANCE
