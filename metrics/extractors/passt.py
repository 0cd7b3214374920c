"""PaSST-S (Koutini et al. 2022) as av-benchmark uses it: hear21passt's model
``passt_s_swa_p16_128_ap476`` built with ``pretrained=False`` and loaded from the weights manager.

Front-end: hear21passt's mel (32 kHz, window 800, hop 320, n_fft 1024, 128 bands) in evaluation
mode (no augmentation); input padded/cut to 10 s. Outputs from one pass: 527 AudioSet logits
(before the sigmoid) and the 768-d embedding (mean of the class and distillation tokens).

hear21passt's front-end is torch code: it runs batched on the extractor's device whichever
front-end is asked for; it agrees with an independent numpy reference within 1e-4 of its range
(tests/test_frontends.py).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from tiva_bench.core.errors import TivaBenchError
from tiva_bench.core.weights import WEIGHTS
from tiva_bench.metrics.extractors.base import AudioExtractor, ExtractorSpec, register
from tiva_bench.metrics.extractors.loading import load_exactly, read_state_dict

SAMPLE_RATE = 32000
ARCH = "passt_s_swa_p16_128_ap476"


def build_passt():
    """``(mel, net)`` from hear21passt, random weights (hear21passt prints a lot while building)."""
    try:
        from hear21passt.models.passt import get_model
        from hear21passt.models.preprocess import AugmentMelSTFT
    except ImportError:

        raise TivaBenchError("PaSST needs the hear21passt package", "pip install hear21passt") from None
    with contextlib.redirect_stdout(io.StringIO()):
        mel = AugmentMelSTFT(n_mels=128, sr=SAMPLE_RATE, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192, htk=False,
                             fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000)
        net = get_model(arch=ARCH, pretrained=False, n_classes=527, in_channels=1, fstride=10, tstride=10, input_fdim=128, input_tdim=998)
    return mel.eval(), net.eval()


SPEC = register(ExtractorSpec(
    name="passt", version="1", sample_rate=SAMPLE_RATE, window_s=10.0, outputs={"embedding": 768, "logits": 527}, weights=("passt",),
    frontend={"arch": ARCH, "n_mels": 128, "win": 800, "hop": 320, "n_fft": 1024, "length_s": 10.0},
    target="tiva_bench.metrics.extractors.passt:PaSSTExtractor",
))


class PaSSTExtractor(AudioExtractor):
    spec = SPEC
    cuda_precision = "float32"

    def build(self):
        mel, net = build_passt()
        self.mel, self.net = mel.to(self.device), net.to(self.device)
        return self

    def load(self, checkpoint=None):
        path = checkpoint or WEIGHTS.require("passt")
        self.build()
        load_exactly(self.net, read_state_dict(path), str(path))
        self.files = (path,)
        return super().load()

    def reference_inputs(self, wavs: np.ndarray) -> torch.Tensor:
        n = 10 * SAMPLE_RATE
        x = torch.from_numpy(np.ascontiguousarray(wavs)).to(self.device)
        x = torch.nn.functional.pad(x, (0, max(0, n - x.shape[-1])))[:, :n]
        return self.mel(x).unsqueeze(1)

    def network(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with contextlib.redirect_stdout(io.StringIO()):  # hear21passt prints shapes on every call
            logits, embedding = self.net(x)
        return {"embedding": embedding, "logits": logits}
