"""Melception against SpecVQGAN's ``Melception`` class as shipped in audioldm_eval
(``feature_extractors/melception.py``: torchvision's Inception3 with a one-channel stem, both early
max-pools removed, outputs "2048", "logits_unbiased", "logits"), which loads the
``{"model": state_dict}`` checkpoint itself.

SpecVQGAN's spectrogram code is on no package index: the front-end is compared with an
independent torchaudio implementation of the same recipe (magnitude STFT 1024/256 centred with
reflect padding, 80 Slaney mel bands 125-7600 Hz, ``(20 log10(max(m, 1e-5)) - 20 + 100) / 100``
clipped to [0, 1]).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.parity.helpers import TOLERANCE, deviation, fit, import_without_init, randomise_batchnorm, record, signals
from tiva_bench.metrics.extractors.melception import FRAMES, MelceptionExtractor, build_melception, melception_spectrogram

pytestmark = pytest.mark.parity
REF = "audioldm-eval 0.0.3 (SpecVQGAN Melception)"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.manual_seed(2)
    net = build_melception()
    randomise_batchnorm(net, seed=2)
    folder = tmp_path_factory.mktemp("melception")
    path = folder / "melception-21-05-10T09-28-40.pt"
    torch.save({"model": net.state_dict()}, path)
    rng = np.random.default_rng(2)
    stats = folder / "train_means_stds_melspec_10s_22050hz.txt"
    np.savetxt(stats, np.stack([rng.uniform(0.2, 0.6, 80), rng.uniform(0.05, 0.2, 80)], axis=1))
    return path, stats


def test_front_end_matches_an_independent_torchaudio_recipe():
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate=22050, n_fft=1024, hop_length=256, f_min=125.0, f_max=7600.0, n_mels=80,
                                               power=1.0, center=True, pad_mode="reflect", norm="slaney", mel_scale="slaney").double()
    worst = 0.0
    for name, wav in signals(22050).items():
        want = mel(torch.from_numpy(wav).double()).numpy()
        want = np.clip((20 * np.log10(np.maximum(want, 1e-5)) - 20 + 100) / 100, 0, 1)
        got = melception_spectrogram(wav)
        assert got.shape == want.shape, name
        worst = max(worst, deviation(got.T, want.T))   # per frame
    record("Melception", "spectrogram in [0,1] from waveform", "torchaudio MelSpectrogram (recipe)", worst)
    # ~1.4e-5 on the tone: torchaudio's and librosa's Slaney filterbanks differ slightly at band
    # edges (a float64 librosa STFT gives the same figure, so it is not precision). SpecVQGAN uses
    # librosa, as tiva-bench does; torchaudio is here only as code written by others.
    assert worst < 1e-4


def test_pool_logits_and_unbiased_logits_match(files, monkeypatch):
    path, stats = files
    ours = MelceptionExtractor(batch_size=2).load(checkpoint=path, stats=stats)
    mod = import_without_init(monkeypatch, "audioldm_eval.feature_extractors.melception")
    ref = mod.Melception(num_classes=309, features_list=["2048", "logits_unbiased", "logits"], feature_extractor_weights_path=str(path)).eval()
    sig = signals(22050)
    wavs = [sig[k] for k in ("impulses", "tone", "short", "long")]
    got = ours(np.stack([fit(w, 10 * 22050) for w in wavs]))
    mean, std = np.loadtxt(stats, dtype=np.float32).T
    specs = np.stack([(melception_spectrogram(fit(w, 10 * 22050))[:, :FRAMES] - mean[:, None]) / std[:, None] for w in wavs]).astype(np.float32)
    with torch.inference_mode():
        pool, unbiased, logits = ref(torch.from_numpy(specs))
    for key, want in (("embedding", pool), ("logits_unbiased", unbiased), ("logits", logits)):
        dev = record("Melception", {"embedding": "pool 2048-d", "logits": "logits 309", "logits_unbiased": "logits without bias (IS)"}[key], REF,
                     deviation(got[key], want.numpy()))
        assert dev < TOLERANCE, key
