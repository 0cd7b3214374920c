"""The weights manager: every pretrained checkpoint tiva-bench uses, where it comes from, and
where it lives on disk.

Files are looked up, in order, in ``--weights-dir`` / ``$TIVA_BENCH_WEIGHTS`` (several folders
separated by ``:``) and in the cache (``$TIVA_BENCH_CACHE/weights``, default
``~/.cache/tiva_bench/weights``). ``tiva-bench weights download NAME`` fetches into the cache with
a progress bar, checks the published hash where one exists, and renames atomically. Nothing is
ever downloaded implicitly: a missing file raises ``WeightsMissingError`` at once, naming the
file, its URL and the command that fetches it.

Every file handed out by ``require`` is checked against its published hash where the source
publishes one; a file that fails it (damaged, incomplete, or a different checkpoint under the same
name) raises ``WeightsHashError`` unless unverified files are allowed (``--allow-unverified`` or
``TIVA_BENCH_ALLOW_UNVERIFIED=1``), in which case its use is recorded in ``unverified``. Files
without a published hash are accepted; their SHA-256 is what results record. Each file is hashed
at most once per process (digests are cached by path, size, modification time and inode).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tiva_bench.core.errors import ConfigError, TivaBenchError, UnknownNameError
from tiva_bench.core.files import cache_root
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


_DIGESTS: dict[tuple, str] = {}
_DIGESTS_LOCK = threading.Lock()


def _file_identity(path: Path) -> tuple:
    """What makes a cached digest valid: the resolved path, size, mtime (ns), inode and device."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def file_hashes(path: str | Path, algorithms: tuple[str, ...] = ("sha256",), chunk: int = 1 << 22) -> dict[str, str]:
    """Hex digests of the file's bytes, one per ``hashlib`` algorithm name, read in one pass.

    Cached for the life of the process by (resolved path, size, mtime, inode): a checkpoint of
    several GB is read once however often it is used; a file replaced or rewritten in place (new
    mtime or size) is hashed again.
    """
    path = Path(path)
    identity = _file_identity(path)
    with _DIGESTS_LOCK:
        out = {a: _DIGESTS[(identity, a)] for a in algorithms if (identity, a) in _DIGESTS}
    todo = [a for a in algorithms if a not in out]
    if todo:
        hashers = {a: hashlib.new(a) for a in todo}
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                for h in hashers.values():
                    h.update(block)
        if _file_identity(path) == identity:  # not rewritten while it was read
            with _DIGESTS_LOCK:
                _DIGESTS.update({(identity, a): h.hexdigest() for a, h in hashers.items()})
        out.update({a: h.hexdigest() for a, h in hashers.items()})
    return {a: out[a] for a in algorithms}


def file_hash(path: str | Path, kind: str) -> str:
    """The file's md5 (``kind == "md5"``) or SHA-256 (any sha256 kind), hex; cached per process."""
    algorithm = "md5" if kind == "md5" else "sha256"
    return file_hashes(path, (algorithm,))[algorithm]


def weights_sha256(path: str | Path) -> str:
    """SHA-256 of a checkpoint file (hex), computed at most once per process for an unchanged file."""
    return file_hashes(path, ("sha256",))["sha256"]


def matches_published(ckpt: Checkpoint, digest: str) -> bool:
    """True when ``digest`` (of kind ``ckpt.hash_kind``) is the published one."""
    if ckpt.hash_kind == "sha256-prefix":
        return digest.startswith(ckpt.hash_value)
    return digest == ckpt.hash_value


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class WeightsManager:
    """Finds, verifies and downloads checkpoints.

    ``allow_unverified``: hand out files that fail their published hash instead of refusing them
    (default: ``$TIVA_BENCH_ALLOW_UNVERIFIED``); each such use is recorded in ``unverified``
    (checkpoint name -> one-line description) so that results can say so.
    """

    def __init__(self, dirs: list[str | Path] | None = None, cache: str | Path | None = None, allow_unverified: bool | None = None):
        env = [d for d in os.environ.get("TIVA_BENCH_WEIGHTS", "").split(os.pathsep) if d]
        self.dirs = [Path(d).expanduser() for d in (dirs or []) + env]
        self.cache = Path(cache) if cache else cache_root() / "weights"
        self._by_name = {c.name: c for c in CHECKPOINTS}
        self.allow_unverified = _env_flag("TIVA_BENCH_ALLOW_UNVERIFIED") if allow_unverified is None else allow_unverified
        self.unverified: dict[str, str] = {}
        self._added = 0

    def add_dir(self, path: str | Path) -> None:
        """Search ``path`` before the folders from ``$TIVA_BENCH_WEIGHTS`` and the cache; folders
        added one after another are searched in the order they were added. Raises ``ConfigError``
        when ``path`` is not an existing folder (a typo would otherwise read as missing weights)."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise ConfigError(f"--weights-dir {path} {what}", "give the folder that holds the checkpoint files (tiva-bench weights list shows their names)")
        self.dirs.insert(self._added, folder)
        self._added += 1

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

    def require(self, name: str, verify: bool = True) -> Path:
        """The file's path, or ``WeightsMissingError`` naming the file, URL and command (no network).

        With ``verify`` (the default), a file that fails its published hash raises
        ``WeightsHashError`` (or, when unverified files are allowed, is recorded in
        ``unverified`` and returned). Files without a published hash are returned as they are.
        """
        path = self.find(name)
        ckpt = self.get(name)
        if path is None:
            where = ", ".join(str(d) for d in [*self.dirs, self.cache])
            raise WeightsMissingError(
                f"checkpoint '{name}' ({ckpt.filename}, {ckpt.size}) is not in {where}; it comes from {ckpt.url}",
                f"tiva-bench weights download {name}  (or download it elsewhere and pass --weights-dir DIR)",
            )
        if verify and ckpt.hash_kind:
            # one read gives the published kind and the SHA-256 that results record
            algorithm = "md5" if ckpt.hash_kind == "md5" else "sha256"
            digest = file_hashes(path, tuple(dict.fromkeys((algorithm, "sha256"))))[algorithm]
            if not matches_published(ckpt, digest):
                problem = f"{path} fails the published {ckpt.hash_kind} of checkpoint '{name}' ({digest} != {ckpt.hash_value})"
                if not self.allow_unverified:
                    raise WeightsHashError(
                        f"{problem}: the file is damaged, incomplete or a different checkpoint",
                        f"delete it and run tiva-bench weights download {name}; or, if you know why it differs, pass --allow-unverified or set TIVA_BENCH_ALLOW_UNVERIFIED=1 (results then say so)",
                    )
                self.unverified[name] = problem
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
        ok = matches_published(ckpt, digest)
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
                if not matches_published(ckpt, digest):
                    raise WeightsHashError(f"downloaded '{name}' has {ckpt.hash_kind} {digest}, expected {ckpt.hash_value}", "retry; if it persists the source changed the file")
            os.replace(tmp, target)
            return target
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


WEIGHTS = WeightsManager()
