"""Running a system's own code: settings, one subprocess per batch, timing, skipped clips.

A user who has a system's checkout and weights says once where it is, then ``--models NAME``
runs it. Settings come from, in order (later wins):

1. the system's defaults (its adapter file: the real command line of its repository, where it
   has one);
2. a systems file, ``--systems FILE`` or ``$TIVA_BENCH_SYSTEMS``, a YAML mapping per system::

       im2wav:
         checkout: /opt/im2wav          # the system's clone (required)
         python: /opt/im2wav/.venv/bin/python
         timeout_s: 1800                # per call; a hanging call is killed, its clips skipped
         batch_size: 32                 # clips per call (the first call is the warm-up)
         command:                       # optional: replaces the default steps
           - ["{python}", "{checkout}/models/sample.py", "-CLIP_dir", "{work}/video_CLIP"]
         cwd: "{checkout}/run"
         outputs: "**/l1/*.wav"         # where the audio appears below {out}
         env: {CUDA_VISIBLE_DEVICES: "0"}

3. environment variables ``TIVA_BENCH_<NAME>_CHECKOUT`` and ``TIVA_BENCH_<NAME>_PYTHON``
   (``NAME`` upper-cased, ``-`` as ``_``: ``TIVA_BENCH_DIFFFOLEY_CFG_CHECKOUT``).

Each step is an argument list (never a shell string) with placeholders: ``{python}``,
``{checkout}``, ``{videos}`` (a folder of links to this call's videos, named by clip),
``{out}`` (this call's output folder), ``{work}`` (a scratch folder), ``{device}``, ``{seed}``,
``{n}`` (clips in the call). A call that exits non-zero, cannot start, or runs past ``timeout_s``
skips the clips of that call with the reason (the last line of its log) and the run goes on; the
log is kept at ``OUT/gen/<system>/.calls/NNNN/log.txt``.

Timing (the paper's protocol, as far as a subprocess allows): the wall-clock time of each call
divided by its clips; the first call is the warm-up and is left out when there are two or more.
A system's script loads its model in every call, so these times include model loading, which the
record says (``includes``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from tiva_bench.baselines.base import Adapter, RunContext, SystemInfo
from tiva_bench.baselines.folder import precomputed
from tiva_bench.core.audio import VIDEO_EXTENSIONS
from tiva_bench.core.errors import ConfigError

ENV_SYSTEMS = "TIVA_BENCH_SYSTEMS"
_KEYS = {"checkout", "python", "command", "cwd", "timeout_s", "batch_size", "outputs", "env", "options"}


@dataclass
class CommandSettings:
    """Resolved settings of one system (see the module docstring)."""

    system: str
    checkout: Path
    steps: list[list[str]]
    python: str = "python"
    cwd: str = "{checkout}"
    timeout_s: float = 3600.0
    batch_size: int = 16
    outputs: str = "**/*.wav"
    env: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


def env_name(system: str, what: str) -> str:
    return f"TIVA_BENCH_{system.upper().replace('-', '_')}_{what}"


def load_systems_file(path: str | Path | None = None) -> dict:
    """The systems file as ``{system: settings}`` (``path``, else ``$TIVA_BENCH_SYSTEMS``, else {})."""
    path = path or os.environ.get(ENV_SYSTEMS)
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"systems file {path} does not exist", f"create it or unset ${ENV_SYSTEMS}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"systems file {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"systems file {path} must map each system name to its settings", "e.g. im2wav: {checkout: /opt/im2wav}")
    for system, settings in data.items():
        unknown = set(settings) - _KEYS
        if unknown:
            raise ConfigError(f"systems file {path}: unknown key(s) {', '.join(sorted(unknown))} for {system}", f"known: {', '.join(sorted(_KEYS))}")
    return data


def resolve_settings(system: str, systems: dict, defaults: dict | None = None) -> CommandSettings | None:
    """Merge defaults, the systems file and the environment; None when no checkout is set."""
    merged = dict(defaults or {})
    merged.update(systems.get(system) or {})
    for what, key in (("CHECKOUT", "checkout"), ("PYTHON", "python")):
        value = os.environ.get(env_name(system, what))
        if value:
            merged[key] = value
    if not merged.get("checkout"):
        return None
    checkout = Path(str(merged["checkout"])).expanduser()
    if not checkout.is_dir():
        raise ConfigError(f"{system}: checkout {checkout} is not a folder", f"fix 'checkout' in the systems file or ${env_name(system, 'CHECKOUT')}")
    steps = merged.get("command")
    if not steps:
        raise ConfigError(f"{system}: its repository has no command-line entry point tiva-bench knows",
                          f"give 'command' (a list of argument lists) for {system} in the systems file, or pass precomputed outputs as {system}=DIR")
    if isinstance(steps, list) and steps and all(isinstance(t, str) for t in steps):
        steps = [steps]
    if not (isinstance(steps, list) and all(isinstance(s, list) and s and all(isinstance(t, (str, int, float)) for t in s) for s in steps)):
        raise ConfigError(f"{system}: 'command' must be an argument list or a list of them (no shell strings)", 'e.g. command: ["{python}", "infer.py", "--out", "{out}"]')
    try:
        timeout = float(merged.get("timeout_s", 3600.0))
        batch = int(merged.get("batch_size", 16))
    except (TypeError, ValueError):
        raise ConfigError(f"{system}: timeout_s and batch_size must be numbers") from None
    if timeout <= 0 or batch < 1:
        raise ConfigError(f"{system}: timeout_s must be > 0 and batch_size >= 1")
    return CommandSettings(system=system, checkout=checkout, steps=[[str(t) for t in s] for s in steps],
                           python=str(merged.get("python") or "python"), cwd=str(merged.get("cwd") or "{checkout}"),
                           timeout_s=timeout, batch_size=batch, outputs=str(merged.get("outputs") or "**/*.wav"),
                           env={str(k): str(v) for k, v in (merged.get("env") or {}).items()}, options=dict(merged.get("options") or {}))


def not_configured(system: str, what: str) -> ConfigError:
    """The one-line error for a system named without outputs and without settings."""
    return ConfigError(f"'{system}' is not set up to run here ({what})",
                       f"pass its generated files as {system}=DIR, or set {env_name(system, 'CHECKOUT')} (or '{system}: {{checkout: ...}}' in ${ENV_SYSTEMS}) to run its own code")


def _fill(token: str, values: dict) -> str:
    try:
        return token.format(**values)
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"unknown placeholder {exc} in {token!r}", f"known: {', '.join('{' + k + '}' for k in values)}") from None


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def call(argv: list[str], cwd: Path, env: dict, timeout_s: float, log: Path) -> str | None:
    """Run one step in its own process group; None on success, else a one-line reason.

    A step that runs past ``timeout_s`` is killed with its children (the whole group).
    """
    with open(log, "ab") as fh:
        fh.write(("$ " + " ".join(argv) + "\n").encode())
        fh.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            return f"cannot start {argv[0]}: {exc.strerror or exc}"
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            return f"timed out after {timeout_s:g} s (killed)"
    if rc != 0:
        tail = _last_line(log)
        return f"exit code {rc}" + (f": {tail}" if tail else "")
    return None


Finalize = Callable[[Path, list, Path], tuple[int, list[dict]]]


def copy_by_stem(settings: CommandSettings) -> Finalize:
    """Default collection: the file below ``{out}`` matching ``outputs`` whose stem is the clip's name."""
    def finalize(raw_out: Path, batch: list, out_dir: Path) -> tuple[int, list[dict]]:
        found: dict[str, list[Path]] = {}
        for p in sorted(raw_out.glob(settings.outputs)):
            if p.is_file():
                found.setdefault(p.stem, []).append(p)
        done, skipped = 0, []
        for item in batch:
            name = Path(item.key).name
            hits = found.get(name, [])
            if len(hits) != 1:
                why = "wrote no file named" if not hits else f"wrote {len(hits)} files named"
                skipped.append({"clip": item.key, "reason": f"{settings.system} {why} '{name}' matching {settings.outputs}"})
                continue
            target = out_dir / Path(item.key).with_suffix(hits[0].suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(hits[0], target)
            done += 1
        return done, skipped
    return finalize


def link_inputs(batch: list, videos: Path) -> None:
    """A folder of symbolic links to the call's videos, each named ``<clip name><ext>``."""
    videos.mkdir(parents=True, exist_ok=True)
    for item in batch:
        (videos / f"{Path(item.key).name}{Path(item.path).suffix.lower()}").symlink_to(Path(item.path).resolve())


def run_batches(items: list, settings: CommandSettings, out_dir: Path, seed: int = 0, device: str = "cpu",
                prepare: Callable[[list, Path], None] = link_inputs, finalize: Finalize | None = None) -> dict:
    """Run the system's steps once per batch of clips; see the module docstring for the summary."""
    finalize = finalize or copy_by_stem(settings)
    calls = out_dir / ".calls"
    generated, skipped, per_call = 0, [], []
    names = [Path(i.key).name for i in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{settings.system}: two test videos share the name {dupes[0]!r}; the system's outputs could not be told apart",
                          "rename one of them, or give a flat folder of videos")
    no_video = [i for i in items if Path(i.path).suffix.lower() not in VIDEO_EXTENSIONS]
    skipped += [{"clip": i.key, "reason": f"{settings.system} needs the video, and this clip has only audio ({Path(i.path).name})"} for i in no_video]
    items = [i for i in items if Path(i.path).suffix.lower() in VIDEO_EXTENSIONS]
    for b, start in enumerate(range(0, len(items), settings.batch_size)):
        batch = items[start:start + settings.batch_size]
        work = calls / f"{b:04d}"
        videos, raw_out = work / "videos", work / "out"
        raw_out.mkdir(parents=True, exist_ok=True)
        prepare(batch, videos)
        values = {"python": settings.python, "checkout": str(settings.checkout), "videos": str(videos), "out": str(raw_out),
                  "work": str(work), "device": device, "seed": str(seed), "n": str(len(batch))}
        cwd = Path(_fill(settings.cwd, values))
        cwd.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        reason = None
        for step in settings.steps:
            reason = call([_fill(t, values) for t in step], cwd, settings.env, settings.timeout_s, work / "log.txt")
            if reason:
                break
        elapsed = time.perf_counter() - t0
        if reason:
            skipped += [{"clip": i.key, "reason": f"{settings.system}: {reason} (log: {work / 'log.txt'})"} for i in batch]
            continue
        done, missing = finalize(raw_out, batch, out_dir)
        generated += done
        skipped += missing
        per_call.append({"clips": len(batch), "seconds": round(elapsed, 4)})
    return {"generated": generated, "skipped": skipped, "timing": call_timing(per_call, device)}


def call_timing(per_call: list[dict], device: str) -> dict | None:
    """Mean per-sample seconds over the successful calls after the first (the warm-up)."""
    if not per_call:
        return None
    timed = per_call[1:] if len(per_call) > 1 else per_call
    total = sum(c["seconds"] for c in timed)
    n = sum(c["clips"] for c in timed)
    return {"seconds_per_sample": total / n, "batches_timed": len(timed), "samples_timed": n,
            "warmup_excluded": len(per_call) > 1, "includes": "the system's own script per call, model loading included",
            "device": device, "device_name": device_name(device), "calls": per_call}


def device_name(device: str) -> str:
    """The accelerator's name for ``cuda``/``cuda:N`` (read through torch when installed), else ``device``."""
    if not str(device).startswith("cuda"):
        return str(device)
    try:
        import torch

        return torch.cuda.get_device_name(torch.device(device)) if torch.cuda.is_available() else str(device)
    except Exception:  # no torch, or no such device: the name given is all that is known
        return str(device)


def system_adapter(name: str, label: str, info: SystemInfo, arg: str | None, ctx: RunContext | None, defaults: dict | None = None,
                   prepare: Callable[[list, Path], None] | None = None,
                   finalize: Callable[[CommandSettings], Finalize] | None = None) -> Adapter:
    """``name=DIR``: precomputed outputs; plain ``name``: the system's own code when set up, else
    a one-line error saying how to set it up or pass outputs."""
    if arg:
        return precomputed(name, label, arg, info)
    ctx = ctx or RunContext()
    settings = resolve_settings(name, ctx.systems, defaults)
    if settings is None:
        raise not_configured(name, "no outputs folder and no checkout")

    def produce(items, out_dir: Path, seed: int, run_ctx: RunContext) -> dict:
        return run_batches(items, settings, out_dir, seed, run_ctx.device, prepare or link_inputs,
                           finalize(settings) if finalize else None)

    return Adapter(name, label, produce, info, kind="command")
