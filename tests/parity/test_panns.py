"""PANNs Cnn14 (16 kHz) against audioldm_eval's copy of the PANNs code (the same file av-benchmark
ships as ``av_bench/panns``), which builds its front-end with torchlibrosa and loads the checkpoint
``ckpt/Cnn14_16k_mAP=0.438.pth`` itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.parity.helpers import require, TOLERANCE, deviation, import_without_init, randomise_batchnorm, record, signals
from tiva_bench.metrics.extractors.panns import Cnn14, PANNsExtractor

pytestmark = pytest.mark.parity
require("torchlibrosa")
REF = "audioldm-eval 0.0.3 (PANNs models.py) + torchlibrosa"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Random network weights, torchlibrosa's own STFT and mel matrices, saved like the release
    (``{"model": state_dict}``) under the name the reference loads from ``ckpt/``."""
    from torchlibrosa.stft import LogmelFilterBank, Spectrogram

    torch.manual_seed(1)
    net = Cnn14()
    randomise_batchnorm(net, seed=1)
    state = net.state_dict()
    spec = Spectrogram(n_fft=512, hop_length=160, win_length=512, window="hann", center=True, pad_mode="reflect", freeze_parameters=True)
    mel = LogmelFilterBank(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000, ref=1.0, amin=1e-10, top_db=None, freeze_parameters=True)
    for k, v in spec.state_dict().items():
        state[f"spectrogram_extractor.{k}"] = v.clone()
    for k, v in mel.state_dict().items():
        state[f"logmel_extractor.{k}"] = v.clone()
    folder = tmp_path_factory.mktemp("panns")
    (folder / "ckpt").mkdir()
    path = folder / "ckpt" / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"model": state, "iteration": 0}, path)
    (folder / "ckpt" / "Cnn14_mAP=0.431.pth").write_bytes(b"present, so the reference does not run wget")
    return folder, path


@pytest.fixture
def reference(checkpoint, monkeypatch):
    folder, _ = checkpoint
    models = import_without_init(monkeypatch, "audioldm_eval.feature_extractors.panns.models")
    monkeypatch.chdir(folder)
    return models.Cnn14(features_list=["2048", "logits"], sample_rate=16000, window_size=512, hop_size=160,
                        mel_bins=64, fmin=50, fmax=8000, classes_num=527).eval()


def test_front_end_weights_and_log_mel_match_torchlibrosa(reference):
    ours = Cnn14().eval()  # front-end weights as built by tiva-bench, not read from the file
    sd_ours, sd_ref = ours.state_dict(), reference.state_dict()
    worst_w = max(deviation(sd_ours[k], sd_ref[k]) for k in sd_ours if k.startswith(("spectrogram_extractor", "logmel_extractor")))
    record("PANNs", "STFT kernels + mel matrix (built)", REF, worst_w)
    worst = 0.0
    with torch.inference_mode():
        for name, wav in signals(16000).items():
            x = torch.from_numpy(wav)[None]
            want = reference.logmel_extractor(reference.spectrogram_extractor(x))
            got = ours.log_mel(x)
            worst = max(worst, deviation(got, want))
    record("PANNs", "log-mel (dB) from waveform", REF, worst)
    assert worst_w < TOLERANCE and worst < TOLERANCE


def test_embedding_and_logits_match(checkpoint, reference):
    _, path = checkpoint
    ours = PANNsExtractor(batch_size=3).load(checkpoint=path)
    sig = signals(16000, seconds=10.0)
    wavs = np.stack([sig[k] for k in ("impulses", "tone", "noise", "silence")])
    got = ours(wavs)
    with torch.inference_mode():
        want = reference(torch.from_numpy(wavs))
    d_emb = record("PANNs", "embedding fc1 2048-d", REF, deviation(got["embedding"], want["2048"]))
    d_log = record("PANNs", "logits 527", REF, deviation(got["logits"], want["logits"]))
    assert d_emb < TOLERANCE and d_log < TOLERANCE
