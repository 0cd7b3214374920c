"""Bad input must never become a wrong number with exit 0: each test builds the bad state itself
(damaged weights, truncated audio, hidden files, symbolic links, loops, folders with media names)
and asserts what happens to it."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np
import pytest
import soundfile as sf

import tiva_bench.core.weights as weights_module
from tiva_bench.config import PairingConfig, ScoreConfig
from tiva_bench.core.audio import decode_audio
from tiva_bench.core.errors import ConfigError, InputError
from tiva_bench.core.media_write import write_audio, write_video
from tiva_bench.core.weights import Checkpoint, WeightsHashError, WeightsManager, file_hashes, weights_sha256
from tiva_bench.pairing import pair_folders
from tiva_bench.runner import score_folders
from tests import procs
from tests.conftest import SR, clicks


def run_cli(*args, env=None):
    """The command line in a fresh process (``TIVA_BENCH_WEIGHTS`` emptied unless given)."""
    return procs.run_cli(*args, timeout=300, env={"TIVA_BENCH_WEIGHTS": "", **(env or {})})


# ---------------------------------------------------------------- weights and their published hashes

def manager_with(tmp_path, ckpt: Checkpoint, **kwargs) -> WeightsManager:
    manager = WeightsManager(dirs=[tmp_path], cache=tmp_path / "cache", **kwargs)
    manager._by_name = {ckpt.name: ckpt}
    return manager


@pytest.mark.parametrize("kind", ["md5", "sha256", "sha256-prefix"])
def test_weights_that_fail_the_published_hash_are_refused_with_the_fix(tmp_path, kind):
    good = b"the published checkpoint bytes"
    digest = (hashlib.md5 if kind == "md5" else hashlib.sha256)(good).hexdigest()
    published = digest[:8] if kind == "sha256-prefix" else digest
    ckpt = Checkpoint("toy", "toy.pt", "https://example.invalid/toy.pt", kind, published, "1 KB", "MIT", "tests")
    (tmp_path / "toy.pt").write_bytes(good)
    manager = manager_with(tmp_path, ckpt)
    assert manager.require("toy") == tmp_path / "toy.pt" and manager.unverified == {}

    (tmp_path / "toy.pt").write_bytes(b"same size, other bytes:  xx")  # replaced in place
    with pytest.raises(WeightsHashError) as err:
        manager.require("toy")
    message = str(err.value)
    assert "fails the published" in message and "--allow-unverified" in message and "tiva-bench weights download toy" in message
    assert "\n" not in message
    assert manager.require("toy", verify=False) == tmp_path / "toy.pt"  # `weights path` only locates

    lenient = manager_with(tmp_path, ckpt, allow_unverified=True)
    assert lenient.require("toy") == tmp_path / "toy.pt"
    assert "toy" in lenient.unverified and published in lenient.unverified["toy"]


def test_allow_unverified_comes_from_the_environment_too(tmp_path, monkeypatch):
    monkeypatch.setenv("TIVA_BENCH_ALLOW_UNVERIFIED", "1")
    assert WeightsManager(cache=tmp_path).allow_unverified is True
    monkeypatch.setenv("TIVA_BENCH_ALLOW_UNVERIFIED", "0")
    assert WeightsManager(cache=tmp_path).allow_unverified is False


def test_weights_without_a_published_hash_are_accepted_and_their_sha256_recorded(tmp_path):
    data = os.urandom(3000)
    ckpt = Checkpoint("free", "free.pt", "https://example.invalid/free.pt", "", "", "3 KB", "MIT", "tests")
    (tmp_path / "free.pt").write_bytes(data)
    manager = manager_with(tmp_path, ckpt)
    path = manager.require("free")
    assert weights_sha256(path) == hashlib.sha256(data).hexdigest()
    assert manager.unverified == {}


def test_each_weights_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    reads = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        reads.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(weights_module, "open", counting_open, raising=False)
    path = tmp_path / "big.pt"
    path.write_bytes(b"a" * 5000)
    first = file_hashes(path, ("md5", "sha256"))
    assert first == {"md5": hashlib.md5(b"a" * 5000).hexdigest(), "sha256": hashlib.sha256(b"a" * 5000).hexdigest()}
    for _ in range(3):
        assert weights_sha256(path) == first["sha256"]
    assert len(reads) == 1  # both digests in one read, then the cache
    path.write_bytes(b"b" * 5000)  # same size, new content
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert weights_sha256(path) == hashlib.sha256(b"b" * 5000).hexdigest() and len(reads) == 2


def test_weights_dir_must_exist_and_keeps_the_given_order(tmp_path):
    manager = WeightsManager(cache=tmp_path / "cache")
    with pytest.raises(ConfigError, match="does not exist"):
        manager.add_dir(tmp_path / "typo")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    manager.add_dir(tmp_path / "a")
    manager.add_dir(tmp_path / "b")
    assert manager.dirs[:2] == [tmp_path / "a", tmp_path / "b"]


@pytest.fixture
def fresh_weights(tmp_path, monkeypatch):
    """The process-wide weights manager, emptied for one in-process CLI call and restored after."""
    from tiva_bench.core.weights import WEIGHTS

    for name, value in (("dirs", []), ("cache", tmp_path / "empty-cache"), ("allow_unverified", False), ("unverified", {}), ("_added", 0)):
        monkeypatch.setattr(WEIGHTS, name, value)
    return WEIGHTS


def cli(capsys, *args) -> tuple[int, str, str]:
    from tiva_bench.cli import main

    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_metrics_finds_weights_in_weights_dir_and_refuses_a_wrong_file(tmp_path, media_pair_dirs, fresh_weights, capsys):
    gen, ref = media_pair_dirs
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "vggish-10086976.pth").write_bytes(b"not the published vggish checkpoint")
    rc, _, err = cli(capsys, "metrics", gen, ref, "--metrics", "fad_vggish", "--weights-dir", tmp_path / "nowhere", "--weights-dir", folder)
    assert rc == 2 and "nowhere does not exist" in err
    rc, out, err = cli(capsys, "metrics", gen, ref, "--metrics", "fad_vggish", "--weights-dir", folder, "-q")
    assert rc == 2, err
    assert "fails the published sha256-prefix" in err and "--allow-unverified" in err
    assert str(folder / "vggish-10086976.pth") in err and out == "" and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_allow_unverified_scores_and_the_results_say_so(tmp_path, media_pair_dirs):
    import torch

    from tests.test_backbones import fake_checkpoint, vggish_official_map

    gen, ref = media_pair_dirs
    folder = tmp_path / "w"
    folder.mkdir()
    torch.save(fake_checkpoint(vggish_official_map()), folder / "vggish-10086976.pth")  # right keys, wrong bytes
    env = {"TIVA_BENCH_CACHE": str(tmp_path / "cache")}
    args = ("metrics", gen, ref, "--metrics", "w_dis,fad_vggish", "--weights-dir", folder, "--workers", "1", "-q")
    refused = run_cli(*args, "--out", tmp_path / "refused", env=env)
    assert refused.returncode == 2 and not (tmp_path / "refused" / "results.json").exists()
    allowed = run_cli(*args, "--allow-unverified", "--out", tmp_path / "out", env=env)
    assert allowed.returncode == 0, allowed.stderr
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "vggish" in data["provenance"]["weights_unverified"]
    assert any(w.startswith("UNVERIFIED WEIGHTS") for w in data["warnings"])


# ---------------------------------------------------------------- truncated and damaged audio

def wav_data_chunk(path) -> tuple[int, int, int]:
    """(offset of the data bytes, bytes the header promises, bytes per frame), read with struct."""
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    pos, block_align = 12, None
    while pos + 8 <= len(raw):
        tag, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if tag == b"fmt ":
            block_align = struct.unpack("<H", raw[pos + 20:pos + 22])[0]
        if tag == b"data":
            return pos + 8, size, block_align
        pos += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def test_a_truncated_wav_is_damaged_not_a_shorter_clip(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, clicks((1.0, 5.0)), SR, subtype="PCM_16")
    offset, promised, block = wav_data_chunk(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.4)])
    held = (int(len(raw) * 0.4) - offset) // block
    with pytest.raises(InputError) as err:
        decode_audio(path)
    assert "damaged" in err.value.reason
    assert f"{promised // block / SR:.3f} s" in err.value.reason and f"{held / SR:.3f} s" in err.value.reason
    # one missing frame of a lossless file is already damage
    path.write_bytes(raw[: offset + promised - block])
    with pytest.raises(InputError, match="damaged"):
        decode_audio(path)


def test_complete_wavs_with_unusual_headers_are_not_called_damaged(tmp_path):
    y = clicks((1.0,), duration_s=2.0)
    path = tmp_path / "x.wav"
    sf.write(path, y, SR, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    offset, size, _ = wav_data_chunk(path)
    # a chunk after the data (e.g. LIST metadata), RIFF size updated
    tail = b"LIST" + struct.pack("<I", 4) + b"INFO"
    with_list = raw + tail
    with_list[4:8] = struct.pack("<I", len(with_list) - 8)
    (tmp_path / "list.wav").write_bytes(bytes(with_list))
    # a streamed WAV whose sizes were never filled in
    streamed = bytearray(raw)
    streamed[4:8] = streamed[offset - 4:offset] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    original, _ = sf.read(path, dtype="float32")  # the untouched file, read by libsndfile alone
    for name in ("list.wav", "streamed.wav"):
        out, sr = decode_audio(tmp_path / name)
        assert sr == SR and out.size == y.size
        np.testing.assert_array_equal(out, original)


@pytest.mark.parametrize("ext", ["flac", "aiff", "mp3", "mkv"])
def test_truncated_files_in_other_containers_are_damaged(tmp_path, ext):
    y = clicks((1.0, 3.0, 6.0))
    path = tmp_path / f"x.{ext}"
    if ext == "mkv":
        write_video(path, np.zeros((80, 16, 16, 3), np.uint8), 10, y, SR)
    elif ext == "aiff":
        sf.write(path, y, SR, format="AIFF")
    else:
        write_audio(path, y, SR)
    assert decode_audio(path)[0].size / decode_audio(path)[1] == pytest.approx(8.0, abs=0.07)  # whole file is fine
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.5)])
    with pytest.raises(InputError, match="damaged: .* promises"):
        decode_audio(path)


def test_the_runner_skips_a_truncated_clip_with_its_reason(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    for name, times in (("a", (1.0, 4.0)), ("b", (2.0, 6.0))):
        sf.write(ref / f"{name}.wav", clicks(times), SR)
        sf.write(gen / f"{name}.wav", clicks([t + 0.1 for t in times]), SR)
    raw = (gen / "b.wav").read_bytes()
    (gen / "b.wav").write_bytes(raw[: int(len(raw) * 0.4)])
    cfg = ScoreConfig(metrics=["w_dis"], workers=1)
    results = score_folders(gen, ref, cfg)
    assert [c.clip for c in results.clips] == ["a"]
    assert [s["clip"] for s in results.skipped] == ["b"] and "generated file damaged" in results.skipped[0]["reason"]
    assert not any("zero-padded" in w for w in results.warnings)


# ---------------------------------------------------------------- every entry below the folders is accounted for

def tone_wav(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, clicks((1.0, 3.0), duration_s=4.0, seed=seed), SR)


def build_nasty_folder(root, outside):
    """Good files plus hidden ones, a linked folder outside, a link loop, a second link to one
    folder, dangling links, a self-loop, a folder named x.wav, a FIFO, non-media files."""
    tone_wav(root / "good.wav")
    tone_wav(root / ".a.wav")
    tone_wav(root / "..weird.wav")
    tone_wav(root / ".cache" / "hidden_inside.wav")
    tone_wav(root / "sub" / "nested.wav")
    tone_wav(outside / "linked_clip.wav")
    os.symlink(outside, root / "linked")  # a folder outside, through a link: followed
    os.symlink(root, root / "sub" / "back")  # a link to a folder above: a loop
    os.symlink(root / "sub", root / "also_sub")  # a second path to a searched folder
    os.symlink(root / "missing.wav", root / "dangling.wav")
    os.symlink(root / "nowhere.txt", root / "dangling.txt")
    os.symlink("selfloop.wav", root / "selfloop.wav")
    (root / "folder.wav").mkdir()
    tone_wav(root / "folder.wav" / "inner.wav")
    os.mkfifo(root / "pipe.wav")
    (root / "notes.txt").write_text("not audio")


def accounted(result) -> tuple[set[str], set[str]]:
    paths = {str(p.gen) for p in result.pairs} | {str(p.ref) for p in result.pairs}
    paths |= {s.path for s in result.skipped} | {i["path"] for i in result.ignored}
    return paths, {s.clip for s in result.skipped}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="symbolic links and FIFOs need a POSIX system")
def test_every_entry_is_scored_skipped_or_ignored_on_both_sides(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    build_nasty_folder(gen, tmp_path / "gen_outside")
    build_nasty_folder(ref, tmp_path / "ref_outside")
    result = pair_folders(gen, ref, PairingConfig())

    assert sorted(p.key for p in result.pairs) == ["good", "inner", "linked_clip", "nested"]
    linked = next(p for p in result.pairs if p.key == "linked_clip")
    assert linked.gen == gen / "linked" / "linked_clip.wav"
    nested = next(p for p in result.pairs if p.key == "nested")
    assert nested.gen == gen / "sub" / "nested.wav"  # the real path, not also_sub/
    reasons = {s.clip: s.reason for s in result.skipped}
    assert "dangling symbolic link" in reasons["dangling"]
    assert "symbolic-link loop" in reasons["selfloop"]
    assert "folder.wav: a folder, not a file" in reasons["folder"]
    assert "pipe.wav: a FIFO, not a file" in reasons["pipe"]
    assert len(result.skipped) == 4  # one entry per clip, both sides' reasons joined
    assert "generated" in reasons["dangling"] and "reference" in reasons["dangling"]
    ignored = {i["path"]: i["reason"] for i in result.ignored}
    for root in (gen, ref):
        assert "hidden" in ignored[str(root / ".a.wav")] and "hidden" in ignored[str(root / "..weird.wav")]
        assert "not searched" in ignored[str(root / ".cache")]
        assert "loop" in ignored[str(root / "sub" / "back")]
        assert "same folder as" in ignored[str(root / "also_sub")]
        assert "dangling symbolic link" in ignored[str(root / "dangling.txt")]
        assert ignored[str(root / "notes.txt")] == "not a media file"
    assert any("hidden (3)" in w and "link loops (1)" in w and "dangling links (1)" in w for w in result.warnings)

    # independently: every entry os.walk sees without following links is accounted for
    paths, clips = accounted(result)
    for root in (gen, ref):
        for folder, dirs, files in os.walk(root):
            if ".cache" in folder:
                continue
            for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d)) or d.endswith(".wav")]:
                full = os.path.join(folder, name)
                stem = os.path.splitext(name)[0]
                followed = any(q.startswith(full + os.sep) for q in paths)  # a linked folder, searched
                assert full in paths or stem in clips or followed, f"{full} is neither scored, skipped nor ignored"


def test_hidden_files_are_scored_when_asked(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    for root in (gen, ref):
        tone_wav(root / ".a.wav")
        tone_wav(root / "..weird.wav")
        tone_wav(root / ".cache" / "deep.wav")
    default = pair_folders(gen, ref, PairingConfig())
    assert default.pairs == [] and default.skipped == [] and len(default.ignored) == 6
    included = pair_folders(gen, ref, PairingConfig(include_hidden=True))
    assert sorted(p.key for p in included.pairs) == ["..weird", ".a", "deep"]


def test_a_reference_problem_is_named_in_the_skip_of_its_clip(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    tone_wav(gen / "x.wav")
    tone_wav(gen / "y.wav")
    ref.mkdir()
    os.symlink(ref / "gone.wav", ref / "x.wav")
    (ref / "y.wav").mkdir()
    tone_wav(ref / "elsewhere" / "z.wav")
    result = pair_folders(gen, ref, PairingConfig())
    reasons = {s.clip: s.reason for s in result.skipped}
    assert reasons["x"].startswith("reference x.wav: dangling symbolic link") and "no reference named" not in reasons["x"]
    assert reasons["y"].startswith("reference y.wav: a folder") and "no generated file named 'z'" in reasons["z"]
    # a readable file with the same key wins; the unreadable entry is ignored with its reason
    tone_wav(ref / "sub" / "x.wav")
    result = pair_folders(gen, ref, PairingConfig())
    assert "x" in [p.key for p in result.pairs]
    assert any(i["path"] == str(ref / "x.wav") and "comes from another file" in i["reason"] for i in result.ignored)


def test_an_unreadable_folder_is_listed(tmp_path, monkeypatch):
    import tiva_bench.pairing as pairing_module

    gen, ref = tmp_path / "gen", tmp_path / "ref"
    tone_wav(gen / "a.wav")
    tone_wav(ref / "a.wav")
    tone_wav(gen / "locked" / "b.wav")
    real_scandir = os.scandir

    def scandir(path):  # what a folder without read permission does (root may read any folder)
        if str(path) == str(gen / "locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(pairing_module.os, "scandir", scandir)
    result = pair_folders(gen, ref, PairingConfig())
    assert [p.key for p in result.pairs] == ["a"]
    assert any(i["path"] == str(gen / "locked") and "cannot be listed (Permission denied)" in i["reason"] for i in result.ignored)
    assert any("unreadable folders (1)" in w for w in result.warnings)


# ---------------------------------------------------------------- a run where nothing could be scored

def test_when_nothing_is_scored_the_reasons_are_printed_even_with_quiet(tmp_path, capsys):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    for name in ("a", "b"):
        tone_wav(ref / f"{name}.wav")
        (gen / f"{name}.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    rc, out, err = cli(capsys, "metrics", gen, ref, "--metrics", "w_dis", "--workers", "1", "-q")
    assert rc == 3 and out == ""
    assert "skipped a: generated file" in err and "skipped b: generated file" in err
    assert "reasons are listed above" in err and "see the skipped reasons above" not in err

    hidden = tmp_path / "hidden_gen"
    tone_wav(hidden / ".a.wav")
    rc, _, err = cli(capsys, "metrics", hidden, ref, "--metrics", "w_dis", "--workers", "1", "-q")
    assert rc == 3
    assert f"ignored {hidden / '.a.wav'}: hidden" in err and "skipped a: no generated file named 'a'" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = cli(capsys, "metrics", empty, empty, "--metrics", "w_dis", "-q")
    assert rc == 3 and "no file at all was found" in err and "above" not in err


def test_many_reasons_are_counted_by_kind_after_the_first_twenty(tmp_path, capsys):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    for i in range(30):
        tone_wav(gen / f"g{i:02d}.wav")
    tone_wav(ref / "other.wav")
    rc, _, err = cli(capsys, "metrics", gen, ref, "--metrics", "w_dis", "-q")
    assert rc == 3
    assert err.count("  skipped ") == 20 and "... and 11 more:" in err
    assert "10 x no reference named ... in" in err and "1 x no generated file named ... in" in err
