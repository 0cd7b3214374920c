"""The weights manager: every pretrained checkpoint tiva-bench uses, where it comes from, and
where it lives on disk.

Files are looked up, in order, in ``--weights-dir`` / ``$TIVA_BENCH_WEIGHTS`` (several folders
separated by ``:``) and in the cache (``$TIVA_BENCH_CACHE/weights``, default
``~/.cache/tiva_bench/weights``). ``tiva-bench weights download NAME`` fetches into the cache with
a progress bar, checks the published hash where one exists, and renames atomically. Nothing is
ever downloaded implicitly: a missing file raises ``WeightsMissingError`` at once, naming the
file, its URL and the command that fetches it.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tiva_bench.core.errors import TivaBenchError, UnknownNameError
from tiva_bench.core.files import cache_root, file_digest
from tiva_bench.core.registry import did_you_mean


class WeightsMissingError(TivaBenchError):
    """A checkpoint is not on disk."""


class WeightsHashError(TivaBenchError):
    """A checkpoint on disk does not match its published hash."""


@dataclass(frozen=True)
class Checkpoint:
    """One file. ``hash_kind``: "sha256", "md5", "sha256-prefix" (torch-hub file-name prefix) or
    "" when the source publishes none (its SHA-256 is then recorded in every results file)."""

    name: str
    filename: str
    url: str
    hash_kind: str
    hash_value: str
    size: str
    licence: str
    used_by: str


CHECKPOINTS: tuple[Checkpoint, ...] = (
    Checkpoint("melception", "melception-21-05-10T09-28-40.pt",
               "https://a3s.fi/swift/v1/AUTH_a235c0f452d648828f745589cde1219a/specvqgan_public/melception-21-05-10T09-28-40.pt",
               "md5", "a71a41041e945b457c7d3d814bbcf72d", "0.27 GB", "MIT (SpecVQGAN)", "fad_melception, kl_melception, is_melception"),
    Checkpoint("melception_stats", "train_means_stds_melspec_10s_22050hz.txt",
               "https://a3s.fi/swift/v1/AUTH_a235c0f452d648828f745589cde1219a/specvqgan_public/train_means_stds_melspec_10s_22050hz.txt",
               "md5", "f449c6fd0e248936c16f6d22492bb625", "~20 KB", "MIT (SpecVQGAN)", "Melception input normalisation"),
    Checkpoint("vggish", "vggish-10086976.pth",
               "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
               "sha256-prefix", "10086976", "~0.28 GB", "Apache-2.0 (Google VGGish, torchvggish port)", "fad_vggish"),
    Checkpoint("vggish_pca", "vggish_pca_params-970ea276.pth",
               "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth",
               "sha256-prefix", "970ea276", "~0.2 MB", "Apache-2.0", "not used by default (no PCA); listed for completeness"),
    Checkpoint("passt", "passt-s-f128-p16-s10-ap.476-swa.pt",
               "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt",
               "", "", "~0.35 GB", "Apache-2.0 (PaSST)", "fad_passt, kl_passt, is_passt"),
    Checkpoint("panns_cnn14_16k", "Cnn14_16k_mAP=0.438.pth",
               "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth?download=1",
               "", "", "~0.33 GB", "MIT (PANNs)", "fad_panns, kl_panns, is_panns"),
    Checkpoint("imagebind_huge", "imagebind_huge.pth",
               "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
               "", "", "~4.5 GB", "CC BY-NC-SA 4.0 (ImageBind)", "imagebind_score"),
    Checkpoint("clip_vit_b16", "ViT-B-16.pt",
               "https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
               "sha256", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "0.34 GB", "MIT (OpenAI CLIP)", "TiVA model video features"),
    Checkpoint("audioldm2_vae", "audioldm2_vae.safetensors",
               "https://huggingface.co/cvssp/audioldm2/resolve/main/vae/diffusion_pytorch_model.safetensors",
               "", "", "~0.22 GB", "CC BY-NC-SA 4.0 (AudioLDM2)", "TiVA paper preset: audio latents"),
    Checkpoint("audioldm2_vae_config", "audioldm2_vae_config.json",
               "https://huggingface.co/cvssp/audioldm2/resolve/main/vae/config.json",
               "", "", "~1 KB", "CC BY-NC-SA 4.0 (AudioLDM2)", "TiVA paper preset: audio latents"),
    Checkpoint("audioldm2_vocoder", "audioldm2_vocoder.safetensors",
               "https://huggingface.co/cvssp/audioldm2/resolve/main/vocoder/model.safetensors",
               "", "", "~0.22 GB", "CC BY-NC-SA 4.0 (AudioLDM2)", "TiVA paper preset: HiFi-GAN vocoder"),
    Checkpoint("audioldm2_vocoder_config", "audioldm2_vocoder_config.json",
               "https://huggingface.co/cvssp/audioldm2/resolve/main/vocoder/config.json",
               "", "", "~1 KB", "CC BY-NC-SA 4.0 (AudioLDM2)", "TiVA paper preset: HiFi-GAN vocoder"),
)


def file_hash(path: Path, kind: str) -> str:
    """The file's md5 (``kind == "md5"``) or SHA-256 (any sha256 kind), hex."""
    return file_digest(path, "md5" if kind == "md5" else "sha256")


class WeightsManager:
    def __init__(self, dirs: list[str | Path] | None = None, cache: str | Path | None = None):
        env = [d for d in os.environ.get("TIVA_BENCH_WEIGHTS", "").split(os.pathsep) if d]
        self.dirs = [Path(d).expanduser() for d in (dirs or []) + env]
        self.cache = Path(cache) if cache else cache_root() / "weights"
        self._by_name = {c.name: c for c in CHECKPOINTS}

    def add_dir(self, path: str | Path) -> None:
        self.dirs.insert(0, Path(path).expanduser())

    def get(self, name: str) -> Checkpoint:
        if name not in self._by_name:
            raise UnknownNameError(f"unknown checkpoint {name!r}{did_you_mean(name, self._by_name)}", "tiva-bench weights list")
        return self._by_name[name]

    def find(self, name: str) -> Path | None:
        ckpt = self.get(name)
        for folder in [*self.dirs, self.cache]:
            path = folder / ckpt.filename
            if path.is_file() and path.stat().st_size > 0:
                return path
        return None

    def require(self, name: str) -> Path:
        """The file's path, or ``WeightsMissingError`` naming the file, URL and command (no network)."""
        path = self.find(name)
        if path is None:
            ckpt = self.get(name)
            where = ", ".join(str(d) for d in [*self.dirs, self.cache])
            raise WeightsMissingError(
                f"checkpoint '{name}' ({ckpt.filename}, {ckpt.size}) is not in {where}; it comes from {ckpt.url}",
                f"tiva-bench weights download {name}  (or download it elsewhere and pass --weights-dir DIR)",
            )
        return path

    def verify(self, name: str) -> tuple[bool | None, str]:
        """``(True, msg)`` matches the published hash, ``(False, msg)`` does not, ``(None, msg)``
        missing or no published hash (the file's SHA-256 is reported)."""
        ckpt = self.get(name)
        path = self.find(name)
        if path is None:
            return None, "missing"
        if not ckpt.hash_kind:
            return None, f"no published hash; sha256 {file_hash(path, 'sha256')}"
        digest = file_hash(path, ckpt.hash_kind)
        ok = digest.startswith(ckpt.hash_value) if ckpt.hash_kind == "sha256-prefix" else digest == ckpt.hash_value
        return ok, f"{ckpt.hash_kind} {'ok' if ok else f'MISMATCH: {digest} != {ckpt.hash_value}'}"

    def download(self, name: str, timeout_s: float = 20.0, progress: bool = True) -> Path:
        """Fetch into the cache (temporary file, hash check, atomic rename)."""
        ckpt = self.get(name)
        existing = self.find(name)
        if existing is not None:
            return existing
        self.cache.mkdir(parents=True, exist_ok=True)
        target = self.cache / ckpt.filename
        fd, tmp = tempfile.mkstemp(dir=self.cache, prefix=f".{ckpt.filename}.", suffix=".part")
        try:
            try:
                response = urllib.request.urlopen(ckpt.url, timeout=timeout_s)
            except OSError as exc:
                os.close(fd)
                raise TivaBenchError(f"cannot download '{name}' from {ckpt.url}: {getattr(exc, 'reason', exc)}",
                                     f"download it on a machine with internet access and pass --weights-dir DIR (file name {ckpt.filename})") from None
            total = int(response.headers.get("Content-Length") or 0)
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=ckpt.filename)
            with os.fdopen(fd, "wb") as fh, response:
                while block := response.read(1 << 20):
                    fh.write(block)
                    if bar is not None:
                        bar.update(len(block))
            if bar is not None:
                bar.close()
            if ckpt.hash_kind:
                digest = file_hash(Path(tmp), ckpt.hash_kind)
                ok = digest.startswith(ckpt.hash_value) if ckpt.hash_kind == "sha256-prefix" else digest == ckpt.hash_value
                if not ok:
                    raise WeightsHashError(f"downloaded '{name}' has {ckpt.hash_kind} {digest}, expected {ckpt.hash_value}", "retry; if it persists the source changed the file")
            os.replace(tmp, target)
            return target
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


WEIGHTS = WeightsManager()
