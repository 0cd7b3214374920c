"""VGGish against torchvggish (harritaylor's PyTorch port, the code av-benchmark, audioldm_eval,
fadtk and frechet_audio_distance load), with the last ReLU removed as all of them do for FAD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.parity.helpers import require, TOLERANCE, deviation, record, signals
from tiva_bench.core.signal import resample
from tiva_bench.metrics.extractors.vggish import VGGishExtractor, vggish_examples

pytestmark = pytest.mark.parity
torchvggish = require("torchvggish")
REF = "torchvggish 0.2"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(tiva-bench extractor, reference without / with its last ReLU) holding one random state dict, saved as the
    released ``vggish-10086976.pth`` (a plain state dict) and loaded through the real loader."""
    torch.manual_seed(0)
    ref = torchvggish.torchvggish._vgg(postprocess=False).eval()
    path = tmp_path_factory.mktemp("vggish") / "vggish-10086976.pth"
    torch.save(ref.state_dict(), path)
    ours = VGGishExtractor(batch_size=4).load(checkpoint=path)
    with_relu = torchvggish.torchvggish._vgg(postprocess=False).eval()
    with_relu.load_state_dict(torch.load(path, weights_only=True))
    ref.embeddings = torch.nn.Sequential(*list(ref.embeddings.children())[:-1])  # as av-benchmark / FAD toolkits
    return ours, ref, with_relu


def test_front_end_matches_torchvggish_waveform_to_examples():
    worst = 0.0
    for name, wav in signals(16000).items():
        ours = vggish_examples(wav)
        theirs = torchvggish.waveform_to_examples(wav.astype(np.float64), 16000, return_tensor=False)
        assert ours.shape == theirs.shape, name
        if theirs.size:
            worst = max(worst, deviation(ours, theirs))
    record("VGGish", "log-mel examples (16 kHz)", REF, worst)
    assert worst < TOLERANCE


def test_network_and_extractor_match_torchvggish(pair):
    ours, ref, with_relu = pair
    sig = signals(16000)
    wavs = np.stack([sig[k] for k in ("impulses", "tone", "noise", "silence")])
    got = ours(wavs)["embedding"]                                     # (4, 8, 128)
    with torch.inference_mode():
        want = np.stack([ref(torchvggish.waveform_to_examples(w.astype(np.float64), 16000, return_tensor=True)).numpy() for w in wavs])
    dev = record("VGGish", "embedding 128-d (waveform -> vectors)", REF, deviation(got, want))
    assert dev < TOLERANCE
    # the final ReLU (frechet_audio_distance's use_activation=True) is the reference ReLU of ours
    with torch.inference_mode():
        x = torch.from_numpy(vggish_examples(wavs[2]))[:, None]
        full = with_relu(x)
        assert deviation(torch.relu(ours.model(x)).numpy(), full.numpy()) < TOLERANCE


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_resampling_deviation_is_measured(sr):
    """torchvggish (and audioldm_eval's FAD) resample with resampy, av-benchmark with torchaudio,
    tiva-bench with soxr HQ for every backbone. The filters differ in their transition band just
    below 8 kHz, i.e. in the top mel band (~6.9-7.5 kHz); the two references differ from each
    other by as much as soxr differs from either. Recorded, bounded, documented (not a network
    question)."""
    import resampy
    import torchaudio

    worst, spread = 0.0, 0.0
    for name, wav in signals(sr).items():
        if name == "silence":
            continue
        theirs = vggish_examples(resampy.resample(wav.astype(np.float64), sr, 16000).astype(np.float32))
        ours = vggish_examples(resample(wav, sr, 16000))
        other = vggish_examples(torchaudio.functional.resample(torch.from_numpy(wav), sr, 16000).numpy())
        k = min(len(ours), len(theirs), len(other))
        worst = max(worst, deviation(ours[:k], theirs[:k]))
        spread = max(spread, deviation(other[:k], theirs[:k]))
    record("VGGish", f"log-mel after resampling {sr}->16000", "resampy (torchvggish)", worst, "soxr HQ; documented")
    record("VGGish", f"log-mel after resampling {sr}->16000", "resampy, from torchaudio (av-benchmark)", spread, "reference vs reference")
    assert worst < 0.15 and worst < 2 * spread
