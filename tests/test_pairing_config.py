"""Pairing by name and the config system."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tiva_bench.config import PairingConfig, load_config
from tiva_bench.core.errors import ConfigError, UnknownNameError
from tiva_bench.pairing import pair_folders


def touch_wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, np.float32), 16000)


def test_pairs_by_stem_across_nested_folders_and_reports_problems(tmp_path):
    gen, ref = tmp_path / "g", tmp_path / "r"
    for p in ["a.wav", "deep/er/b.flac", "c.wav", "dup.wav", "x/dup.wav", "only_gen.wav"]:
        touch_wav(gen / p)
    for p in ["a.wav", "b.wav", "dup.wav", "only_ref.wav"]:
        touch_wav(ref / p)
    (ref / "c.mp4").write_bytes(b"x")  # pairing does not decode
    (ref / "c.wav").write_bytes(b"x")  # audio beats video for one key
    (gen / "readme.txt").write_text("hi")
    result = pair_folders(gen, ref, PairingConfig())
    assert [p.key for p in result.pairs] == ["a", "b", "c"]
    assert result.pairs[2].ref.name == "c.wav"
    assert sorted(s.clip for s in result.skipped) == ["dup", "only_gen", "only_ref"]  # one reason each
    reasons = {s.clip: s.reason for s in result.skipped}
    assert "duplicate generated name" in reasons["dup"]
    assert "no reference named 'only_gen'" in reasons["only_gen"]
    assert "no generated file named 'only_ref'" in reasons["only_ref"]
    assert {"path": str(gen / "readme.txt"), "reason": "not a media file"} in result.ignored
    assert any("1 names have both an audio file and a video; the audio files are used" in w for w in result.warnings)


def test_pairing_name_maps(tmp_path):
    gen, ref = tmp_path / "g", tmp_path / "r"
    touch_wav(gen / "clip1_gen.wav")
    touch_wav(gen / "sample-yt123_000010-seed3.wav")
    touch_wav(ref / "clip1.wav")
    touch_wav(ref / "yt123_000010.wav")
    r = pair_folders(gen, ref, PairingConfig(strip_suffix="_gen"))
    assert [p.key for p in r.pairs] == ["clip1"]
    r = pair_folders(gen, ref, PairingConfig(gen_pattern=r"(?P<key>yt\w+_\d{6})"))
    assert [p.key for p in r.pairs] == ["yt123_000010"]
    assert any("does not match the pattern" in s.reason for s in r.skipped)
    touch_wav(gen / "a" / "k.wav")
    touch_wav(ref / "a" / "k.wav")
    r = pair_folders(gen, ref, PairingConfig(by="relpath"))
    assert "a/k" in [p.key for p in r.pairs]


def test_config_overrides_types_and_errors(tmp_path):
    cfg = load_config(None, ["sync.hop_length=512", "audio.window_s=10", "metrics=w_dis,dtw_dis", "pairing.gen_pattern=none", "onset.nms_reference=false"])
    assert cfg.sync.hop_length == 512 and cfg.audio.window_s == 10.0
    assert cfg.metrics == ["w_dis", "dtw_dis"] and cfg.pairing.gen_pattern is None and cfg.onset.nms_reference is False
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("sync:\n  dtw: fastdtw\n  fastdtw_radius: 3\n")
    cfg = load_config(yaml_file, ["sync.fastdtw_radius=2"])
    assert cfg.sync.dtw == "fastdtw" and cfg.sync.fastdtw_radius == 2
    with pytest.raises(ConfigError, match="unknown config key 'sync.hop'"):
        load_config(None, ["sync.hop=3"])
    with pytest.raises(ConfigError, match="cannot read 'abc' as int"):
        load_config(None, ["sync.hop_length=abc"])
    with pytest.raises(ConfigError, match="sync.dtw"):
        load_config(None, ["sync.dtw=slow"])


def test_registry_suggests_close_names():
    from tiva_bench.metrics.registry import METRICS

    with pytest.raises(UnknownNameError, match="did you mean 'w_dis'"):
        METRICS.get("wdis")


def test_shipped_default_config_equals_the_code_defaults():
    from pathlib import Path

    from tiva_bench.config import ScoreConfig, to_dict

    shipped = load_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    assert to_dict(shipped) == to_dict(ScoreConfig())


def test_relative_stem_is_pathlibs():
    """The string fast path of the pairing keys equals pathlib's relative_to + with_suffix("")."""
    from pathlib import Path

    from tiva_bench.pairing import _relative_stem, root_prefix

    names = ["a.wav", "a.b.wav", ".wav", ".x.wav", "b.", "noext", "sub/c.WAV", "sub/.hidden", "sub.d/e", "sub.d/e.mp4", "x/y/z.tar.gz", "..wav", "a..wav"]
    for root in (Path("gen"), Path("gen/"), Path("/tmp/some dir"), Path("../up")):
        prefix = root_prefix(root)
        for name in names:
            path = root / name
            assert str(path).startswith(prefix)  # the string path is taken
            assert _relative_stem(path, root, prefix) == path.relative_to(root).with_suffix("").as_posix(), (root, name)
    # "." and "/": children do not start with "<root>/", so the prefix is empty and pathlib answers
    assert root_prefix(Path(".")) == root_prefix(Path("/")) == ""
    assert _relative_stem(Path("sub/c.wav"), Path("."), "") == "sub/c"
    assert _relative_stem(Path("/tmp/c.d.wav"), Path("/"), "") == "tmp/c.d"
