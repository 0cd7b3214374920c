"""IM2WAV: two 4-s halves per video joined at 4.0 s, IM2WAV's naming, its l0/l1 output tree."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tiva_bench.baselines.adapters import get_adapter
from tiva_bench.baselines.im2wav import HALVES, concatenate_halves, halves_templates, join_folder
from tiva_bench.core.errors import ConfigError

SR = 16000


def _half(onset_s: float, n: int = 65536) -> np.ndarray:
    """IM2WAV's 4.096-s sample with one click at ``onset_s``."""
    y = np.zeros(n, np.float32)
    y[int(onset_s * SR)] = 1.0
    return y


def test_halves_are_cut_to_four_seconds_so_the_second_starts_at_four():
    first, second = _half(1.0), _half(0.5)
    joined = concatenate_halves(first, second, SR)
    assert joined.shape == (8 * SR,)
    assert np.flatnonzero(joined).tolist() == [SR * 1, int(SR * 4.5)]  # 4.0 + 0.5 s, not 4.096 + 0.5 s
    short = concatenate_halves(np.ones(3 * SR, np.float32), np.ones(SR, np.float32), SR)
    assert short.shape == (8 * SR,) and short[3 * SR:4 * SR].sum() == 0 and short[4 * SR:5 * SR].sum() == SR


def test_default_naming_follows_im2wav_and_is_configurable(monkeypatch):
    assert HALVES == ("{key}_0_4000", "{key}_4000_8000")
    assert halves_templates() == HALVES
    monkeypatch.setenv("TIVA_BENCH_IM2WAV_HALVES", "{key}-a,{key}-b")
    assert halves_templates() == ("{key}-a", "{key}-b")
    assert halves_templates({"halves": ["a_{key}", "b_{key}"]}) == ("a_{key}", "b_{key}")
    with pytest.raises(ConfigError, match="two different name templates"):
        halves_templates({"halves": "{key}"})


def test_join_folder_uses_l1_joins_pairs_keeps_whole_files_and_lists_problems(tmp_path):
    src, out = tmp_path / "samples", tmp_path / "out"
    for level in ("l0", "l1"):
        (src / level).mkdir(parents=True)
        marker = 0.25 if level == "l1" else 2.0  # tell the two levels apart
        sf.write(src / level / "clipA_0_4000.wav", _half(marker), SR, subtype="FLOAT")
        sf.write(src / level / "clipA_4000_8000.wav", _half(marker), SR, subtype="FLOAT")
        sf.write(src / level / "lonely_0_4000.wav", _half(1.0), SR, subtype="FLOAT")
        sf.write(src / level / "rates_0_4000.wav", _half(1.0), SR, subtype="FLOAT")
        sf.write(src / level / "rates_4000_8000.wav", np.zeros(4 * 22050, np.float32), 22050, subtype="FLOAT")
        sf.write(src / level / "whole.wav", np.ones(8 * SR, np.float32) * 0.1, SR, subtype="FLOAT")
    summary = join_folder(src, out, HALVES)
    y, sr = sf.read(out / "l1" / "clipA.wav", dtype="float32")
    assert sr == SR and y.size == 8 * SR and np.flatnonzero(y).tolist() == [int(0.25 * SR), int(4.25 * SR)]
    assert (out / "l1" / "whole.wav").exists() and not (out / "l0").exists()
    reasons = {s["clip"]: s["reason"] for s in summary["skipped"]}
    assert "lonely_4000_8000 is missing" in reasons["l1/lonely"]
    assert "different sample rates (16000 and 22050 Hz)" in reasons["l1/rates"]
    assert summary["generated"] == 2 and summary["joined"] == 1 and summary["whole_files"] == 1


def test_im2wav_adapter_writes_joined_clips_for_scoring(tmp_path):
    src = tmp_path / "im2wav"
    src.mkdir()
    sf.write(src / "x_0_4000.wav", _half(1.0), SR)
    sf.write(src / "x_4000_8000.wav", _half(1.0), SR)
    adapter = get_adapter(f"im2wav={src}")
    assert adapter.kind == "precomputed" and adapter.info.vis_feat == "CLIP" and adapter.info.guidance == "CFG"
    summary = adapter.generate([], tmp_path / "gen")
    assert summary["generated"] == 1 and (tmp_path / "gen" / "x.wav").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        get_adapter(f"im2wav={tmp_path / 'nope'}")
