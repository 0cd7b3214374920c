"""``tiva-bench ablate``: the TiVA paper's ablations (Tables 3, 4, 5, Figure 5) as data-driven suites.

A suite is a YAML file (bundled under ``configs/suites/`` or a user's own path) naming its rows,
with optional suite-wide ``config`` and ``train`` overrides that every row's own override. A row is: a ``label`` (the paper's notation: ``t_{a}``, ``CLS^{4,8,11}``), optional ``slug`` (its
folder name), ``config`` (overrides of ``TiVAConfig``, checked against its fields), ``stages``
(``all`` or a list of ``layout`` / ``generator`` / ``joint``), ``train`` (overrides of the train
config: ``steps``, ``lr``, ``batch_size`` as one number or per stage, or any other train-config field),
``inference`` (``layout: predicted|ground_truth``, ``use_layout``, ``use_semantics``,
``guidance``, ``steps``), ``pretrained`` (see below), ``presets`` (the presets the row applies to;
default all) and, for tables with descriptor columns, ``cells`` (text; ``${field}`` is replaced by
the row's TiVA config value, e.g. ``"${layout_head}"``). Every key and value is checked before any
training.

``pretrained`` says where ``--pretrained`` finds the row's checkpoint: a shipped name
(``tiva-tiny``), a mapping of model parts to shipped names (``{layout: ablate-table4-...,
generator: ablate-table3-g-mel}``: the parts are joined into one model, e.g. w/o Joint from a T and
a G trained separately), or ``train`` (nothing shipped: the row is trained on first use even with
``--pretrained``). Without it, the file ``ablate-<suite>-<row>.safetensors`` among the package's
model assets (written by ``scripts/train_ablation_checkpoints.py``).

Suite kinds: ``generate`` (train, generate the test split, score), ``layout`` (train T, report
L2(t_a, t_v) on the validation split), ``resolution`` (``layout`` over a sweep of layout sizes with
training-loss and validation-L2 curves: Figure 5; its rows come from ``sweep`` + ``template``, or
from ``series``: a list of ``{name, slug, config, sweep[, pretrained]}``, one curve family each, e.g. the two
layout-predictor output layers); a suite with ``include`` runs other suites.

Outputs under ``OUT``:

* ``data/``: the synthetic splits (when no ``--data``), and ``test-n<N>/`` / ``val-n<N>/``: the
  first N clips of a split (symbolic links), the reference folders;
* ``train/<key>/<stage>/``: one training run per distinct (config, seed, data, stages so far,
  stage settings): rows whose training is identical up to a stage share it (TiVA and w/o S share
  everything; w/o Joint reuses TiVA's layout and generator stages);
* ``gen/<row>/<clip>.wav``: generated audio, nothing else besides ``timing.json``;
* ``rows/<row>/``: ``results.json`` (with the reference folder), ``per_clip.csv``, ``row.json``
  (what made it; a rerun with the same settings reuses the row), ``layouts.npz`` (layout rows:
  arrays ``t_v``, ``t_a``, ``clip``), ``curves.json`` (resolution rows);
* ``tables/<suite>.{csv,md,tex}``; ``figures/fig5.{png,pdf}``.

L2(t_a, t_v) (the paper's Eq. 8): for each validation clip the mean over the M x C layout cells of
``(t_v - t_a)^2``, where ``t_a = Resize(Norm(mel); M, C)`` is min-max normalised to [0, 1] per clip
(so every cell is in [0, 1]), then the mean over clips: the layout stage's training loss, measured
on held-out clips.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib.resources
import json
import math
import os
import re
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from tiva_bench import synthetic
from tiva_bench.baselines.tiva import generate_folder
from tiva_bench.config import ScoreConfig
from tiva_bench.core.cache import FeatureCache
from tiva_bench.core.data import folder_items, load_av_window
from tiva_bench.core.distributed import RankGroup
from tiva_bench.core.errors import ConfigError, TivaBenchError
from tiva_bench.core.files import atomic_write_text, file_digest, text_digest
from tiva_bench.core.registry import did_you_mean
from tiva_bench.core.results import provenance, utc_now
from tiva_bench.metrics.registry import METRICS, synthetic_metrics_for
from tiva_bench.models.tiva.codec import build_codec
from tiva_bench.models.tiva.config import TiVAConfig, preset
from tiva_bench.models.tiva.frame_encoder import frame_encoder_for
from tiva_bench.models.tiva.model import PARTS, TiVAModel, checkpoint_extra
from tiva_bench.models.tiva.losses import STAGES
from tiva_bench.models.tiva.pipeline import ASSETS, SHIPPED, load_pipeline
from tiva_bench.models.tiva.stages import stages_for
from tiva_bench.reports import ablation as ablation_report
from tiva_bench.reports.figures import plot_layout_resolution
from tiva_bench.runner import score_folders
from tiva_bench.train import TrainConfig, feature_settings, prepare_features, train


SUITE_KINDS = ("generate", "layout", "resolution")
SUITE_KEYS = {"name", "title", "kind", "columns", "descriptors", "rows", "include", "config", "train", "sweep", "template", "series", "eval_every"}
ROW_KEYS = {"label", "slug", "config", "stages", "train", "inference", "pretrained", "cells", "presets"}
SERIES_KEYS = {"name", "slug", "config", "sweep", "pretrained"}
TRAIN_ON_USE = "train"  # pretrained: train -> no shipped checkpoint; trained on first use
INFERENCE_KEYS = {"layout": str, "use_layout": bool, "use_semantics": bool, "guidance": float, "steps": int}
# train-config fields the ablate command sets itself (every other field may be overridden by a suite)
# (a model is always built from the row's config and passed as ``init``, so fields that only shape a new model are set here too)
TRAIN_OWNED = {"preset", "stage", "data", "out", "init", "seed", "device", "cache_dir", "model", "init_unet", "init_unet_contexts"}
LAYOUT_L2 = "layout_l2"
DATA_SEED = 100  # the seed of the data the shipped tiva-tiny checkpoints were trained on
PRESETS_ALLOWED = ("tiva-tiny", "tiva-paper")


# ---------------------------------------------------------------- suites: reading and checking

@dataclass
class Row:
    """One row of a suite, fully resolved (``cfg`` is the TiVA config it trains and samples with)."""

    label: str
    slug: str
    cfg: TiVAConfig
    overrides: dict
    stages: list[str]
    train: dict
    inference: dict
    pretrained: str | dict | None
    cells: dict = field(default_factory=dict)

    @property
    def trains_on_use(self) -> bool:
        """No shipped checkpoint: trained even under ``--pretrained``."""
        return self.pretrained == TRAIN_ON_USE


@dataclass
class Suite:
    name: str
    title: str
    kind: str
    columns: dict
    descriptors: list[str]
    rows: list[Row]
    eval_every: int = 100
    source: str = ""


def bundled_suites() -> list[str]:
    """Names of the suites shipped in the package."""
    folder = importlib.resources.files("tiva_bench.configs") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_suite_file(name_or_path: str) -> tuple[dict, str]:
    """The parsed YAML of a bundled suite name or a path; returns ``(data, source)``."""
    text, source = None, name_or_path
    if name_or_path in bundled_suites():
        res = importlib.resources.files("tiva_bench.configs") / "suites" / f"{name_or_path}.yaml"
        text, source = res.read_text(encoding="utf-8"), f"bundled suite {name_or_path}"
    elif name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"suite file {path} does not exist", "give a bundled suite name (tiva-bench ablate --list) or a YAML path")
        text = path.read_text(encoding="utf-8")
    else:
        raise ConfigError(f"unknown suite {name_or_path!r}{did_you_mean(name_or_path, bundled_suites())}",
                          f"use one of {', '.join(bundled_suites())}, or a path to a YAML file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a mapping at the top level")
    return data, source


def _unknown(keys, known: set[str], where: str) -> None:
    for key in keys:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(str(key), known)}", f"known keys: {', '.join(sorted(known))}")


def _slugify(label: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower().replace("/", "")).strip("-")
    return slug or "row"


def _coerce_like(value: Any, default: Any, where: str) -> Any:
    """``value`` checked against the type of ``default`` (lists become tuples for tuple fields)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if default and all(isinstance(d, int) and not isinstance(d, bool) for d in default):
            return tuple(_coerce_like(v, 0, where) for v in value)
        return tuple(value)
    return value  # a field type this checker does not know: the config's own validate() decides


def resolve_config(base: TiVAConfig, overrides: dict, where: str) -> TiVAConfig:
    """``base`` with ``overrides`` applied; keys are checked against ``TiVAConfig``'s fields (read
    from the dataclass, so new fields work without changes here) and values against their types
    and the config's own ``validate``."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}.config must be a mapping of TiVA config fields")
    fields = {f.name for f in dataclasses.fields(TiVAConfig)}
    _unknown(overrides, fields, f"{where}.config")
    values = {k: _coerce_like(v, getattr(base, k), f"{where}.config.{k}") for k, v in overrides.items()}
    try:
        return dataclasses.replace(base, **values).validate()
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}.config: {exc}") from None


def _check_train(overrides: dict, where: str) -> dict:
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}.train must be a mapping")
    default = TrainConfig()
    known = {f.name for f in dataclasses.fields(TrainConfig)} - TRAIN_OWNED
    _unknown(overrides, known, f"{where}.train")
    out = {}
    for key, value in overrides.items():
        current = getattr(default, key)
        if isinstance(current, dict):  # per stage: one number for every stage, or a mapping
            if isinstance(value, dict):
                _unknown(value, set(STAGES), f"{where}.train.{key}")
                out[key] = {s: _coerce_like(v, current[s], f"{where}.train.{key}.{s}") for s, v in value.items()}
            else:
                out[key] = {s: _coerce_like(value, current[s], f"{where}.train.{key}") for s in STAGES}
        else:
            out[key] = _coerce_like(value, current, f"{where}.train.{key}")
    return out


def _check_inference(inference: dict, where: str) -> dict:
    if not isinstance(inference, dict):
        raise ConfigError(f"{where}.inference must be a mapping")
    _unknown(inference, set(INFERENCE_KEYS), f"{where}.inference")
    out = {}
    for key, value in inference.items():
        out[key] = _coerce_like(value, INFERENCE_KEYS[key](), f"{where}.inference.{key}")
    if out.get("layout", "predicted") not in ("predicted", "ground_truth"):
        raise ConfigError(f"{where}.inference.layout: must be predicted or ground_truth, got {out['layout']!r}")
    if "guidance" in out and out["guidance"] < 0:
        raise ConfigError(f"{where}.inference.guidance: must be >= 0")
    if "steps" in out and out["steps"] < 1:
        raise ConfigError(f"{where}.inference.steps: must be >= 1")
    return out


def _check_stages(stages: Any, cfg: TiVAConfig, where: str) -> list[str]:
    if stages == "all":  # the three stages; the generator alone for a model without layout
        return stages_for(cfg, "all")
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{where}.stages: expected 'all' or a list of {', '.join(STAGES)}, got {stages!r}")
    for s in stages:
        if s not in STAGES:
            raise ConfigError(f"{where}.stages: unknown stage {s!r}{did_you_mean(str(s), STAGES)}", f"use {', '.join(STAGES)} or all")
    if [STAGES.index(s) for s in stages] != sorted(STAGES.index(s) for s in set(stages)):
        raise ConfigError(f"{where}.stages: stages must be distinct and in the order {', '.join(STAGES)}")
    if not cfg.use_layout and any(s != "generator" for s in stages):
        raise ConfigError(f"{where}.stages: a model without layout trains only the generator stage")
    return list(stages)


def _check_row(data: Any, base: TiVAConfig, suite_config: dict, suite_train: dict, where: str, descriptors: list[str]) -> Row:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a row must be a mapping with at least a label")
    _unknown(data, ROW_KEYS, where)
    label = data.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ConfigError(f"{where}: every row needs a label (a string)")
    where = f"{where} ({label!r})"
    row_config = data.get("config") or {}
    if not isinstance(row_config, dict):
        raise ConfigError(f"{where}.config must be a mapping of TiVA config fields")
    overrides = {**suite_config, **row_config}
    cfg = resolve_config(base, overrides, where)
    slug = data.get("slug", _slugify(label))
    if not isinstance(slug, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", slug):
        raise ConfigError(f"{where}.slug: {slug!r} is not a file-safe name (lower-case letters, digits, '.', '_', '-')")
    cells = data.get("cells") or {}
    if not isinstance(cells, dict):
        raise ConfigError(f"{where}.cells must be a mapping of descriptor column -> text")
    _unknown(cells, set(descriptors), f"{where}.cells")
    pretrained = data.get("pretrained")
    if isinstance(pretrained, dict):
        _unknown(pretrained, set(PARTS), f"{where}.pretrained")
        if not pretrained or not all(isinstance(v, str) for v in pretrained.values()):
            raise ConfigError(f"{where}.pretrained: map model parts ({', '.join(PARTS)}) to shipped checkpoint names")
    elif pretrained is not None and not isinstance(pretrained, str):
        raise ConfigError(f"{where}.pretrained must be a shipped checkpoint's name, a mapping of parts to names, or {TRAIN_ON_USE!r}")
    try:
        cells = {k: string.Template(str(v)).substitute(cfg.to_dict()) for k, v in cells.items()}
    except KeyError as exc:
        raise ConfigError(f"{where}.cells: ${{{exc.args[0]}}} is not a TiVA config field", "write ${field} with a field of TiVAConfig, or $$ for a dollar sign") from None
    except ValueError as exc:
        raise ConfigError(f"{where}.cells: {exc}", "write ${field} with a field of TiVAConfig, or $$ for a dollar sign") from None
    train_over = dict(suite_train)
    train_over.update(_check_train(data.get("train") or {}, where))
    return Row(label=label, slug=slug, cfg=cfg, overrides=dict(overrides), stages=_check_stages(data.get("stages", "all"), cfg, where),
               train=train_over, inference=_check_inference(data.get("inference") or {}, where), pretrained=pretrained,
               cells=cells)


def _sweep_rows(sizes: Any, template: dict, label_suffix: str, slug_suffix: str, config: dict, where: str) -> list[dict]:
    """Raw rows (template + ``layout_time``/``layout_bands`` + ``config``) for a list of ``[M, C]``."""
    if not isinstance(sizes, list):
        raise ConfigError(f"{where}: expected a list of [M, C]")
    rows = []
    for k, size in enumerate(sizes):
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise ConfigError(f"{where}[{k}]: expected [M, C] with positive integers, got {size!r}")
        m, c = size
        rows.append({**template, "label": f"[{m},{c}]{label_suffix}", "slug": f"m{m}-c{c}{slug_suffix}",
                     "config": {**(template.get("config") or {}), **config, "layout_time": m, "layout_bands": c}})
    return rows


def load_suite(name_or_path: str, preset_name: str = "tiva-tiny", _seen: tuple = ()) -> list[Suite]:
    """Read and check a suite (every key and value) without training anything.

    Returns the suites to run: one, or those named by ``include`` (in order).
    """
    if preset_name not in PRESETS_ALLOWED:
        raise ConfigError(f"unknown preset {preset_name!r}{did_you_mean(preset_name, PRESETS_ALLOWED)}", f"use {' or '.join(PRESETS_ALLOWED)}")
    data, source = read_suite_file(name_or_path)
    _unknown(data, SUITE_KEYS, source)
    name = data.get("name", Path(name_or_path).stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError(f"{source}: name {name!r} is not a file-safe name")
    if "include" in data:
        include = data["include"]
        if not isinstance(include, list) or not include:
            raise ConfigError(f"{source}.include: expected a list of suite names or paths")
        extra = set(data) - {"name", "title", "include"}
        if extra:
            raise ConfigError(f"{source}: a suite with include takes only name, title and include, not {sorted(extra)[0]!r}")
        if name in _seen:
            raise ConfigError(f"{source}: suite {name!r} includes itself")
        out: list[Suite] = []
        for item in include:
            if not isinstance(item, str):
                raise ConfigError(f"{source}.include: {item!r} is not a suite name")
            out += load_suite(item, preset_name, (*_seen, name))
        return out
    kind = data.get("kind", "generate")
    if kind not in SUITE_KINDS:
        raise ConfigError(f"{source}.kind: unknown kind {kind!r}{did_you_mean(str(kind), SUITE_KINDS)}", f"use {', '.join(SUITE_KINDS)}")
    columns = data.get("columns")
    if isinstance(columns, list):
        columns = {"synthetic": columns, "real": columns}
    if not isinstance(columns, dict) or not columns:
        raise ConfigError(f"{source}.columns: expected a list of metric names, or {{synthetic: [...], real: [...]}}")
    _unknown(columns, {"synthetic", "real"}, f"{source}.columns")
    for domain, names in columns.items():
        if not isinstance(names, list) or not names:
            raise ConfigError(f"{source}.columns.{domain}: expected a list of metric names")
        for metric in names:
            if kind == "generate":
                if metric == LAYOUT_L2 or metric not in METRICS:
                    raise ConfigError(f"{source}.columns.{domain}: unknown metric {metric!r}{did_you_mean(str(metric), METRICS.names())}",
                                      "tiva-bench metrics --list shows them")
            elif metric != LAYOUT_L2:
                raise ConfigError(f"{source}.columns.{domain}: a {kind} suite reports only {LAYOUT_L2}, not {metric!r}")
    descriptors = data.get("descriptors") or []
    if not isinstance(descriptors, list) or not all(isinstance(d, str) for d in descriptors):
        raise ConfigError(f"{source}.descriptors: expected a list of column titles")
    base = preset(preset_name)
    suite_config = data.get("config") or {}
    resolve_config(base, suite_config, source)  # suite-wide TiVA config overrides, under every row's own
    suite_train = _check_train(data.get("train") or {}, source)
    eval_every = data.get("eval_every", 100)
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
        raise ConfigError(f"{source}.eval_every: expected a positive integer, got {eval_every!r}")
    if kind == "resolution":
        if "rows" in data:
            raise ConfigError(f"{source}: a resolution suite makes its rows from sweep and template; remove 'rows'")
        sweep = data.get("sweep")
        if not isinstance(sweep, dict) or preset_name not in sweep:
            raise ConfigError(f"{source}.sweep: no sizes for preset {preset_name!r}", "give sweep: {<preset>: [[M, C], ...]}")
        _unknown(sweep, set(PRESETS_ALLOWED), f"{source}.sweep")
        template = data.get("template") or {}
        if not isinstance(template, dict):
            raise ConfigError(f"{source}.template must be a mapping (a row without label)")
        _unknown(template, ROW_KEYS - {"label", "slug", "cells", "presets"}, f"{source}.template")
        raw_rows = _sweep_rows(sweep[preset_name], template, "", "", {}, f"{source}.sweep.{preset_name}")
        series = data.get("series") or []
        if not isinstance(series, list):
            raise ConfigError(f"{source}.series: expected a list of {{name, slug, config, sweep}}")
        for i, one in enumerate(series):
            where = f"{source}.series[{i}]"
            if not isinstance(one, dict):
                raise ConfigError(f"{where}: expected a mapping with name, slug, config and sweep")
            _unknown(one, SERIES_KEYS, where)
            if not isinstance(one.get("name"), str) or not isinstance(one.get("slug"), str) or not isinstance(one.get("sweep"), dict):
                raise ConfigError(f"{where}: needs a name, a slug and a sweep ({{<preset>: [[M, C], ...]}})")
            _unknown(one["sweep"], set(PRESETS_ALLOWED), f"{where}.sweep")
            if not isinstance(one.get("config") or {}, dict):
                raise ConfigError(f"{where}.config must be a mapping of TiVA config fields")
            series_template = {**template, **({"pretrained": one["pretrained"]} if "pretrained" in one else {})}
            raw_rows += _sweep_rows(one["sweep"].get(preset_name, []), series_template, f" {one['name']}", f"-{one['slug']}", one.get("config") or {},
                                    f"{where}.sweep.{preset_name}")
    else:
        if "sweep" in data or "template" in data:
            raise ConfigError(f"{source}: sweep and template belong to resolution suites (kind: resolution)")
        if "series" in data:
            raise ConfigError(f"{source}: series belong to resolution suites (kind: resolution)")
        raw_rows = data.get("rows")
        if not isinstance(raw_rows, list) or not raw_rows:
            raise ConfigError(f"{source}.rows: expected a list of rows")
    rows = []
    for i, r in enumerate(raw_rows):
        row = _check_row(r, base, suite_config, suite_train, f"{source}.rows[{i}]", descriptors)
        presets = r.get("presets", list(PRESETS_ALLOWED)) if isinstance(r, dict) else None
        if not isinstance(presets, list) or not presets or any(p not in PRESETS_ALLOWED for p in presets):
            raise ConfigError(f"{source}.rows[{i}].presets: expected a list of {', '.join(PRESETS_ALLOWED)}, got {presets!r}")
        if preset_name in presets:
            rows.append(row)
    if not rows:
        raise ConfigError(f"{source}: no row applies to preset {preset_name}")
    slugs = [r.slug for r in rows]
    dup = next((s for s in slugs if slugs.count(s) > 1), None)
    if dup:
        raise ConfigError(f"{source}: two rows share the folder name {dup!r}", "give one of them another slug")
    if kind in ("layout", "resolution"):
        for r in rows:
            if r.stages != ["layout"] or not r.cfg.use_layout:
                raise ConfigError(f"{source}: row {r.label!r} of a {kind} suite must train the layout stage only (stages: [layout])")
            if r.cfg.layout_kind != "mel":
                raise ConfigError(f"{source}: row {r.label!r}: L2(t_a, t_v) is defined for the mel layout only")
    return [Suite(name=name, title=str(data.get("title", name)), kind=kind, columns=columns, descriptors=descriptors, rows=rows,
                  eval_every=eval_every, source=source)]


# ---------------------------------------------------------------- options and data

@dataclass
class AblateOptions:
    """What the command line gives ``run_suites``. ``steps``: every training stage's step count
    (a quick check); ``sampling_steps``: the sampler's steps for every row (quick checks only)."""

    out: Path = Path("runs/ablate")
    preset: str = "tiva-tiny"
    data: Path | None = None
    n: int = 32
    n_val: int = 200
    n_train: int = 1000
    seed: int = 0
    data_seed: int = DATA_SEED
    synthetic_version: int = 1
    device: str = "cpu"
    pretrained: bool = False
    steps: int | None = None
    sampling_steps: int | None = None
    batch_size: int = 16
    workers: int = 0


@dataclass
class Splits:
    train: Path | None
    val: Path | None
    test: Path | None
    synthetic: bool
    notes: dict

    @functools.cached_property
    def train_files(self) -> str:
        """``folder_fingerprint`` of the training folder, listed once per suite run."""
        return folder_fingerprint(self.train) if self.train is not None else "missing"


def _subset(split_dir: Path, n: int, target: Path) -> Path:
    """``target`` holding symbolic links to the first ``n`` videos of ``split_dir`` (and their
    same-stem ``.wav`` / ``.json`` companions): the reference folder of a row."""
    items = folder_items(split_dir)
    if len(items) < n:
        raise ConfigError(f"{split_dir} holds {len(items)} videos, fewer than the {n} asked for", "lower --n / --n-val, or add clips")
    wanted = {}
    for item in items[:n]:
        for companion in [item.path, *(item.path.with_suffix(ext) for ext in (".wav", ".json"))]:
            if companion.exists():
                wanted[Path(item.key).parent / companion.name] = companion.resolve()
    if target.is_dir():
        present = {p.relative_to(target) for p in target.rglob("*") if p.is_symlink() or p.is_file()}
        if present == set(wanted) and all((target / k).resolve() == v for k, v in wanted.items()):
            return target
        for p in sorted(target.rglob("*"), reverse=True):
            p.unlink() if (p.is_symlink() or p.is_file()) else p.rmdir()
    for rel, src in wanted.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).symlink_to(src)
    return target


def prepare_splits(opts: AblateOptions, need_train: bool, need_val: bool, need_test: bool, log=print) -> Splits:
    """The train / validation / test folders: ``--data DIR/{train,val,test}``, or synthetic
    splits written under ``OUT/data`` (data seed and benchmark version recorded)."""
    out = Path(opts.out)
    if opts.data is None:
        root = out / "data" / f"synthetic-v{opts.synthetic_version}-seed{opts.data_seed}"
        counts = {}
        if need_train:
            counts["train"] = opts.n_train
        if need_val:
            counts["val"] = opts.n_val
        if need_test:
            counts["test"] = opts.n
        have = {s: len(list((root / s).glob("*.mp4"))) if (root / s).is_dir() else 0 for s in counts}
        counts = {s: max(n, have[s]) for s, n in counts.items()}
        if any(have[s] < n for s, n in counts.items()):
            log(f"writing synthetic splits {counts} (v{opts.synthetic_version}, data seed {opts.data_seed}) to {root}")
        synthetic.generate(root, counts, seed=opts.data_seed, version=opts.synthetic_version)
        notes = {"data": "synthetic", "synthetic_version": opts.synthetic_version, "data_seed": opts.data_seed}
        is_synth = True
    else:
        root = Path(opts.data)
        missing = [s for s, need in (("train", need_train), ("val", need_val), ("test", need_test)) if need and not (root / s).is_dir()]
        if missing:
            raise ConfigError(f"--data {root} has no {missing[0]}/ folder", "give a folder with train/, val/ and test/ sub-folders of videos")
        meta = root / "synthetic.json"
        is_synth = meta.exists()
        notes = {"data": str(root)}
        if is_synth:
            info = json.loads(meta.read_text())
            notes.update(synthetic_version=info.get("version", 1), data_seed=info.get("seed"))
    train_dir = root / "train" if need_train else None
    val_dir = _subset(root / "val", opts.n_val, out / "data" / f"val-n{opts.n_val}") if need_val else None
    test_dir = _subset(root / "test", opts.n, out / "data" / f"test-n{opts.n}") if need_test else None
    return Splits(train_dir, val_dir, test_dir, is_synth, notes)


# ---------------------------------------------------------------- training (shared, resumable)

def _train_settings(row: Row, opts: AblateOptions) -> TrainConfig:
    tc = TrainConfig()
    for key, value in row.train.items():
        if isinstance(getattr(tc, key), dict):
            setattr(tc, key, {**getattr(tc, key), **value})
        else:
            setattr(tc, key, value)
    if opts.steps is not None:
        tc.steps = {s: opts.steps for s in STAGES}
    return tc


def folder_fingerprint(folder: Path) -> str:
    """A digest of every file's path (relative to ``folder``) and size below it, links followed;
    ``"missing"`` when there is no such folder. A training stage's key holds it, so a stage is
    trained again when its data gains, loses or changes a file (e.g. more synthetic clips written
    into the same folder with a larger ``--n-train``, or clips added to a ``--data`` folder) and is
    reused when the same files are read again. Sizes, not contents: listing 15,000 videos takes a
    fraction of a second."""
    if not folder.is_dir():
        return "missing"
    entries = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            try:
                size = path.stat().st_size
            except OSError:  # a dangling link: the trainer reports it
                size = -1
            entries.append(f"{path.relative_to(folder).as_posix()}\t{size}")
    return text_digest("\n".join(entries), 16)


def training_chain(row: Row, opts: AblateOptions, splits: Splits, curve_every: int | None = None) -> list[tuple[str, str, TrainConfig]]:
    """``[(stage, key, settings)]``: the key of a stage digests everything its result depends on
    (TiVA config, seed, training data and its files, and every stage up to it with its settings), so two rows
    with the same prefix of training share those stages' checkpoints. ``curve_every``: the run
    also records validation curves at that interval (a separate run from one that did not)."""
    tc = _train_settings(row, opts)
    common = {k: v for k, v in dataclasses.asdict(tc).items() if k not in TRAIN_OWNED and k not in ("steps", "lr", "batch_size")}
    chain, done = [], []
    files = splits.train_files
    for stage in row.stages:
        done.append({"stage": stage, "steps": tc.steps[stage], "lr": tc.lr[stage], "batch_size": tc.batch_size[stage]})
        spec = {"preset": opts.preset, "config": row.cfg.to_dict(), "seed": opts.seed, "data": str(splits.train.resolve()),
                "data_files": files, "stages": list(done), "train": common}
        if curve_every:
            spec["curve_every"] = curve_every
        chain.append((stage, text_digest(json.dumps(spec, sort_keys=True, default=str), 16), tc))
    return chain


def train_row(row: Row, opts: AblateOptions, splits: Splits, log=print, progress_for: Callable | None = None, curve_every: int | None = None) -> Path:
    """Train (or reuse) the row's stages; returns the final checkpoint.

    ``progress_for(stage, stage_dir)`` may return a ``progress`` wrapper for ``train`` (used for
    the resolution suite's validation curves)."""
    import torch

    out = Path(opts.out) / "train"
    previous = None
    for stage, key, tc in training_chain(row, opts, splits, curve_every):
        folder = out / key
        ckpt = folder / "checkpoint.safetensors"
        if ckpt.exists() and not (folder / "train_state.pt").exists() and checkpoint_extra(ckpt).get("stage") == "done":
            log(f"  {row.label}: stage {stage} already trained ({folder})")
            previous = ckpt
            continue
        folder.mkdir(parents=True, exist_ok=True)
        if previous is None:
            init = folder / "init.safetensors"
            if not init.exists():
                torch.manual_seed(opts.seed)
                TiVAModel(row.cfg).save(init, extra={"stage": "init", "seed": opts.seed})
            previous = init
        atomic_write_text(folder / "spec.json", json.dumps({"row": row.label, "stage": stage, "config": row.overrides,
                                                            "seed": opts.seed, "data": str(splits.train)}, indent=1))
        run = dataclasses.replace(tc, preset=opts.preset, stage=stage, data=str(splits.train), out=str(folder), init=str(previous),
                                  seed=opts.seed, device=opts.device, cache_dir=str(Path(opts.out) / "cache"),
                                  checkpoint_every=max(1, min(tc.checkpoint_every, tc.steps[stage])))
        progress = progress_for(stage, folder, run) if progress_for else None
        if progress is not None:
            run.checkpoint_every = max(1, min(run.checkpoint_every, progress.every))
        log(f"  {row.label}: training stage {stage} ({run.steps[stage]} steps) in {folder}")
        previous = train(run, progress=progress, log=lambda m: None)
    return previous


def pretrained_checkpoint(row: Row, suite: Suite, opts: AblateOptions) -> Path:
    """The shipped checkpoint of a row, or a one-line error saying which row and how to train it.

    A row's checkpoint is ``pretrained:`` (a shipped name, or parts joined from several: written
    once to ``OUT/train/composed-<digest>.safetensors``) or, failing that, the file
    ``ablate-<suite>-<row>.safetensors`` among the package's model assets (what
    ``scripts/train_ablation_checkpoints.py`` writes)."""
    fix = (f"train it: tiva-bench ablate {suite.name} --preset {opts.preset} (without --pretrained), "
           f"or python scripts/train_ablation_checkpoints.py --suite {suite.name} --row {row.slug}")

    def shipped(name: str) -> Path:
        path = SHIPPED.get(name, ASSETS / f"{name}.safetensors")
        if not path.exists():
            raise ConfigError(f"row {row.label!r} of suite {suite.name} has no shipped {opts.preset} checkpoint ({path.name})", fix)
        return path

    if isinstance(row.pretrained, dict):
        sources = {part: shipped(name) for part, name in row.pretrained.items()}
        digest = text_digest(json.dumps({k: [v.name, file_digest(v)] for k, v in sorted(sources.items())}, sort_keys=True), 16)
        path = Path(opts.out) / "train" / f"composed-{digest}.safetensors"
        if not path.exists():
            try:
                model = TiVAModel.compose(sources)
            except TivaBenchError as exc:
                raise ConfigError(f"row {row.label!r} of suite {suite.name}: {exc.message}", exc.fix or fix) from None
            model.save(path, extra={"composed_from": {k: v.name for k, v in sources.items()}})
    else:
        path = shipped(row.pretrained if row.pretrained else f"ablate-{suite.name}-{row.slug}")
    cfg, base = TiVAModel.load(path).cfg, preset(opts.preset)
    if (cfg.frame_encoder, cfg.codec, cfg.feature_dim) != (base.frame_encoder, base.codec, base.feature_dim):
        raise ConfigError(f"row {row.label!r} of suite {suite.name}: the shipped checkpoint {path.name} is not a {opts.preset} model", fix)
    for key, value in row.overrides.items():
        if getattr(cfg, key) != getattr(row.cfg, key):
            raise ConfigError(f"row {row.label!r}: the shipped checkpoint {path.name} has {key}={getattr(cfg, key)!r}, the row asks for {getattr(row.cfg, key)!r}", fix)
    return path


# ---------------------------------------------------------------- generation rows

def _sampling(row: Row, opts: AblateOptions) -> dict:
    inf = row.inference
    return {"steps": opts.sampling_steps or inf.get("steps", row.cfg.steps), "guidance": inf.get("guidance", row.cfg.guidance),
            "use_layout": inf.get("use_layout"), "use_semantics": inf.get("use_semantics", True), "layout": inf.get("layout", "predicted")}


def generate_with_ground_truth(videos: Path, out: Path, checkpoint: Path, seed: int, steps: int, guidance: float, use_semantics: bool,
                               batch_size: int, device: str) -> dict:
    """Like ``generate_folder``, but G is conditioned on the layout of each clip's own audio
    (Table 3). Same per-clip noise seeds as ``generate_folder``; returns the same summary keys."""
    import soundfile as sf
    import torch

    pipe = load_pipeline(checkpoint, None, device)
    cfg = pipe.cfg
    out.mkdir(parents=True, exist_ok=True)
    items = folder_items(videos)
    done, skipped, sampling_s = 0, [], 0.0
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        windows = []
        for item in batch:
            try:
                windows.append(load_av_window(item, cfg.fps, cfg.sample_rate, cfg.window_s))
            except TivaBenchError as exc:
                skipped.append({"clip": item.key, "reason": getattr(exc, "reason", str(exc))})
                windows.append(None)
        kept = [(k, item, w) for k, (item, w) in enumerate(zip(batch, windows)) if w is not None]
        if not kept:
            continue
        cls, patch = pipe.encode_frames([w.frames[: cfg.n_frames] for _, _, w in kept])
        with torch.no_grad():
            audio = torch.from_numpy(np.stack([w.audio for _, _, w in kept])).to(pipe.device)
            layout = pipe.model.target_layout(pipe.codec.log_mel(audio))
        gens = [torch.Generator("cpu").manual_seed(seed * 1_000_003 + start + k) for k, _, _ in kept]
        t0 = time.perf_counter()
        latents = pipe(cls, patch, generator=gens, steps=steps, guidance=guidance, use_layout=True, use_semantics=use_semantics,
                       layout=layout, decode=False, batch_size=batch_size).latents
        sampling_s += time.perf_counter() - t0
        wavs = pipe.codec.vocode(pipe.codec.decode_mel(latents), int(round(cfg.window_s * cfg.sample_rate)))
        for (_, item, _), wav in zip(kept, wavs):
            sf.write(out / f"{Path(item.key).name}.wav", np.clip(wav, -1, 1), cfg.sample_rate, subtype="FLOAT")
            done += 1
    summary = {"generated": done, "skipped": skipped, "seconds_per_sample": sampling_s / max(done, 1), "steps": steps, "guidance": guidance,
               "seed": seed, "use_layout": True, "layout": "ground_truth", "use_semantics": use_semantics, "checkpoint": str(checkpoint),
               "device": str(pipe.device)}
    (out / "timing.json").write_text(json.dumps(summary, indent=1))
    return summary


def _score_config(columns: list[str], splits: Splits, opts: AblateOptions) -> ScoreConfig:
    cfg = ScoreConfig(metrics=list(columns), workers=opts.workers, device=opts.device, cache_dir=str(Path(opts.out) / "cache"))
    cfg.audio.window_s = synthetic.DURATION_S if splits.synthetic else 8.0
    return cfg.validate()


def run_generate_row(row: Row, suite: Suite, checkpoint: Path, opts: AblateOptions, splits: Splits, columns: list[str], spec: dict) -> dict:
    out = Path(opts.out)
    gen_dir, row_dir = out / "gen" / row.slug, out / "rows" / row.slug
    samp = _sampling(row, opts)
    if gen_dir.exists():  # an interrupted row starts its audio again (training resumes on its own)
        for p in gen_dir.iterdir():
            if p.is_file():
                p.unlink()
    if samp["layout"] == "ground_truth":
        summary = generate_with_ground_truth(splits.test, gen_dir, checkpoint, opts.seed, samp["steps"], samp["guidance"],
                                             samp["use_semantics"], opts.batch_size, opts.device)
    else:
        summary = generate_folder(splits.test, gen_dir, checkpoint=checkpoint, seed=opts.seed, steps=samp["steps"], guidance=samp["guidance"],
                                  use_layout=samp["use_layout"], use_semantics=samp["use_semantics"], batch_size=opts.batch_size,
                                  device=opts.device, quiet=True, save_layouts=False)
    results = score_folders(gen_dir, splits.test, _score_config(columns, splits, opts), label=row.label)
    results.provenance["generation"] = {k: v for k, v in summary.items() if k != "skipped"} | {"skipped": len(summary.get("skipped", []))}
    results.provenance["ablation"] = spec
    results.write(row_dir)
    return results.to_dict()


# ---------------------------------------------------------------- layout rows (Table 4, Figure 5)

def layout_l2(t_v: np.ndarray, t_a: np.ndarray) -> np.ndarray:
    """Per-clip L2(t_a, t_v) of the paper's Eq. 8: mean over the M x C cells of ``(t_v - t_a)^2``.

    ``t_v``, ``t_a``: ``(N, M, C)``; returns ``(N,)``."""
    if t_v.shape != t_a.shape or t_v.ndim != 3:
        raise ValueError(f"layouts must both be (N, M, C), got {t_v.shape} and {t_a.shape}")
    return ((t_v.astype(np.float64) - t_a.astype(np.float64)) ** 2).mean(axis=(1, 2))


class ValidationLayouts:
    """The validation clips' features and target layouts ``t_a`` for one config (cached on disk)."""

    def __init__(self, cfg: TiVAConfig, val_dir: Path, cache_dir: Path):
        import torch

        items = folder_items(val_dir)
        encoder = frame_encoder_for(cfg)
        cache = FeatureCache("tiva_train", feature_settings(cfg, encoder), str(cache_dir))
        files, skipped = prepare_features(items, cfg, encoder, build_codec(cfg), cache)
        skipped_keys = {s["clip"] for s in skipped}
        self.clips = [i.key for i in items if i.key not in skipped_keys]  # prepare_features keeps item order
        rows = [np.load(f) for f in files]
        if not rows:
            raise TivaBenchError(f"no validation clip of {val_dir} could be read", "check the validation videos")
        self.cls = torch.from_numpy(np.stack([r["cls"] for r in rows]).astype(np.float32))
        self.patch = torch.from_numpy(np.stack([r["patch"] for r in rows]).astype(np.float32))
        self.t_a = np.stack([r["layout"] for r in rows]).astype(np.float32)
        self.skipped = skipped

    def predict(self, model: TiVAModel, device: str = "cpu", batch: int = 32) -> np.ndarray:
        import torch

        model = model.to(device).eval()
        outs = []
        with torch.no_grad():
            for s in range(0, self.cls.shape[0], batch):
                outs.append(model.layout(self.cls[s:s + batch].to(device), self.patch[s:s + batch].to(device)).float().cpu().numpy())
        return np.concatenate(outs)


def _layout_results(row: Row, t_v: np.ndarray, val: ValidationLayouts, splits: Splits, spec: dict, started) -> dict:
    per_clip = layout_l2(t_v, val.t_a)
    value = float(per_clip.mean())
    std = float(per_clip.std(ddof=1)) if per_clip.size > 1 else math.nan
    return {
        "format": "tiva-bench/ablation-layout/1", "label": row.label, "gen_dir": None, "ref_dir": str(splits.val),
        "metrics": {LAYOUT_L2: {"display": "L2(t_a, t_v)", "higher_is_better": False, "level": "set", "table_scale": 1.0,
                                "description": "mean over clips of the mean squared difference per layout cell (Eq. 8)",
                                "value": value, "std": std, "n": int(per_clip.size), "n_undefined": 0}},
        "n_scored": int(per_clip.size), "n_skipped": len(val.skipped), "skipped": val.skipped,
        "per_clip": [{"clip": c, "values": {LAYOUT_L2: float(v)}} for c, v in zip(val.clips, per_clip)],
        "layout": {"M": row.cfg.layout_time, "C": row.cfg.layout_bands, "normalisation": "per-clip min-max of the log-mel to [0, 1], area-averaged to M x C"},
        "warnings": [], "provenance": provenance(started, 0.0) | {"ablation": spec},
    }


class _CurveProgress:
    """A ``progress`` wrapper for ``train`` that measures validation L2 every ``every`` steps.

    ``train`` saves its checkpoint at the end of a step whose number is a multiple of
    ``checkpoint_every`` (set to ``every``); this wrapper resumes after that step's body, reads the
    checkpoint and appends ``(step, val_l2)`` to ``curve.jsonl`` in the stage folder."""

    def __init__(self, folder: Path, every: int, val: ValidationLayouts, device: str):
        self.folder, self.every, self.val, self.device = folder, every, val, device

    def __call__(self, iterable, total=None):
        if not isinstance(iterable, range):  # feature preparation: no wrapping
            return iterable
        return self._steps(iterable)

    def _steps(self, steps: range):
        last = steps.stop
        for step in steps:
            yield step
            if (step + 1) % self.every == 0 or step + 1 == last:
                model = TiVAModel.load(self.folder / "checkpoint.safetensors")
                l2 = float(layout_l2(self.val.predict(model, self.device), self.val.t_a).mean())
                with open(self.folder / "curve.jsonl", "a") as fh:
                    fh.write(json.dumps({"step": step + 1, "val_l2": l2}) + "\n")


def read_curves(stage_folder: Path) -> dict[str, list[float]]:
    """``{"step", "train_loss", "val_l2"}`` lists at the validation steps of one layout stage
    (training loss: the mean of the logged losses since the previous validation step)."""
    val = {}
    if (stage_folder / "curve.jsonl").exists():
        for line in (stage_folder / "curve.jsonl").read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                val[int(rec["step"])] = float(rec["val_l2"])
    losses = {}
    if (stage_folder / "losses.csv").exists():
        with open(stage_folder / "losses.csv", newline="") as fh:
            for rec in csv.DictReader(fh):
                losses[int(rec["step"])] = float(rec["loss"])
    steps = sorted(val)
    train_loss, prev = [], 0
    for s in steps:
        window = [losses[k] for k in range(prev + 1, s + 1) if k in losses]
        train_loss.append(float(np.mean(window)) if window else math.nan)
        prev = s
    return {"step": [float(s) for s in steps], "train_loss": train_loss, "val_l2": [val[s] for s in steps]}


def run_layout_row(row: Row, suite: Suite, checkpoint: Path, opts: AblateOptions, splits: Splits, val: ValidationLayouts, spec: dict,
                   curves: dict | None = None) -> dict:
    started = utc_now()
    row_dir = Path(opts.out) / "rows" / row.slug
    row_dir.mkdir(parents=True, exist_ok=True)
    t_v = val.predict(TiVAModel.load(checkpoint), opts.device)
    np.savez(row_dir / "layouts.npz", t_v=t_v.astype(np.float32), t_a=val.t_a.astype(np.float32), clip=np.array(val.clips))
    result = _layout_results(row, t_v, val, splits, spec, started)
    if curves is not None:
        atomic_write_text(row_dir / "curves.json", json.dumps(curves, indent=1))
        result["curves"] = curves
    atomic_write_text(row_dir / "results.json", json.dumps(result, indent=2))
    return result


# ---------------------------------------------------------------- suites end to end

def _row_spec(row: Row, suite: Suite, opts: AblateOptions, splits: Splits, columns: list[str], checkpoint_key: str) -> dict:
    """Everything a finished row depends on; a rerun whose spec matches reuses the row."""
    return {"suite": suite.name, "label": row.label, "preset": opts.preset, "config": row.overrides, "stages": row.stages,
            "checkpoint": checkpoint_key, "sampling": _sampling(row, opts) if suite.kind == "generate" else None,
            "seed": opts.seed, "columns": columns, "data": splits.notes,
            "reference": str(splits.test if suite.kind == "generate" else splits.val),
            "n": opts.n if suite.kind == "generate" else opts.n_val, "eval_every": suite.eval_every if suite.kind == "resolution" else None}


def _finished(row_dir: Path, spec: dict) -> dict | None:
    marker, results = row_dir / "row.json", row_dir / "results.json"
    if not (marker.exists() and results.exists()):
        return None
    try:
        if json.loads(marker.read_text()).get("spec") != json.loads(json.dumps(spec, default=str)):
            return None
        return json.loads(results.read_text())
    except (OSError, ValueError):
        return None


SHIPPED_SYNTHETIC_VERSION = 1  # the synthetic benchmark version the shipped checkpoints were trained on


def check_pretrained(suites: list[Suite], opts: AblateOptions) -> None:
    """With ``--pretrained``, every row needs a shipped checkpoint, and the shipped checkpoints
    (trained on synthetic v1) are not v2 ablations: fail before any work."""
    if opts.pretrained:
        shipped_rows = [(suite, row) for suite in suites for row in suite.rows if not row.trains_on_use]
        if shipped_rows and opts.data is None and opts.synthetic_version != SHIPPED_SYNTHETIC_VERSION:
            names = " ".join(s.name for s in suites)
            raise ConfigError(f"the shipped checkpoints were trained on synthetic benchmark v{SHIPPED_SYNTHETIC_VERSION}, so --pretrained "
                              f"cannot give v{opts.synthetic_version} ablations",
                              f"retrain the rows on v{opts.synthetic_version}: tiva-bench ablate {names} --synthetic-version "
                              f"{opts.synthetic_version} (without --pretrained; table5 takes about an hour on two CPU cores)")
        for suite in suites:
            for row in suite.rows:
                if not row.trains_on_use:
                    pretrained_checkpoint(row, suite, opts)


def run_suite(suite: Suite, opts: AblateOptions, log=print, group: RankGroup | None = None) -> dict[str, Path]:
    """Run (or reuse) every row of one suite and write its table (and figure); returns the paths.

    Under ``torchrun`` (``group`` joined): rank 0 writes the data, every rank trains each row
    together (the trainer's data-parallel path), rank 0 alone generates, scores and writes; the
    ranks meet after each row. Other ranks return ``{}``."""
    group = group or RankGroup()
    main = group.launch.is_main
    out = Path(opts.out)
    need_train = not opts.pretrained or any(r.trains_on_use for r in suite.rows)
    need_val = suite.kind in ("layout", "resolution")
    splits = prepare_splits(opts, need_train, need_val, suite.kind == "generate", log) if main else None
    splits = group.all_gather(splits, f"{suite.name} data")[0]  # the folders rank 0 wrote; the other ranks write nothing there
    domain = "synthetic" if splits.synthetic else "real"
    if domain not in suite.columns:
        raise ConfigError(f"suite {suite.name} names no columns for {domain} data", f"add columns: {{{domain}: [...]}} to {suite.source}")
    columns = suite.columns[domain]
    if splits.synthetic:  # benchmark v2 is scored with its own classifier (fad_synth2, class_acc2, ...)
        columns = synthetic_metrics_for(columns, int(splits.notes.get("synthetic_version", 1)))
    val_cache: dict[str, ValidationLayouts] = {}

    def validation(cfg: TiVAConfig) -> ValidationLayouts:
        key = json.dumps(feature_settings(cfg), sort_keys=True, default=str)
        if key not in val_cache:
            val_cache[key] = ValidationLayouts(cfg, splits.val, out / "cache")
        return val_cache[key]

    curve_every = None
    if suite.kind == "resolution":
        curve_every = suite.eval_every if opts.steps is None else max(1, min(suite.eval_every, opts.steps))
    log(f"suite {suite.name} ({suite.source}): {len(suite.rows)} rows, preset {opts.preset}, seed {opts.seed}")
    records = []
    for row in suite.rows:
        shipped = opts.pretrained and not row.trains_on_use
        if shipped:
            checkpoint = pretrained_checkpoint(row, suite, opts)
            checkpoint_key = f"shipped:{checkpoint.name}"
            chain_last = None
        else:
            chain = training_chain(row, opts, splits, curve_every)
            checkpoint_key = chain[-1][1]
            chain_last = out / "train" / checkpoint_key
            checkpoint = chain_last / "checkpoint.safetensors"
        spec = _row_spec(row, suite, opts, splits, columns, checkpoint_key)
        row_dir = out / "rows" / row.slug
        result = _finished(row_dir, spec)
        if result is not None:
            log(f"  {row.label}: reusing {row_dir}")
        else:
            if not shipped:
                if opts.pretrained:
                    log(f"  {row.label}: no shipped checkpoint (pretrained: {TRAIN_ON_USE} in the suite); training it")
                progress_for = None
                if curve_every and main:  # the trainer records curves on rank 0 only
                    val = validation(row.cfg)
                    progress_for = lambda stage, folder, run, val=val: _CurveProgress(folder, curve_every, val, opts.device)
                checkpoint = train_row(row, opts, splits, log, progress_for, curve_every)
            if not main:  # rank 0 generates and scores; meet it when the row is done
                group.all_gather(None, f"row {row.slug}")
                continue
            log(f"  {row.label}: {'generating and scoring' if suite.kind == 'generate' else 'predicting validation layouts'}")
            if suite.kind == "generate":
                result = run_generate_row(row, suite, checkpoint, opts, splits, columns, spec)
            else:
                curves = None
                if suite.kind == "resolution":  # recorded while training, or shipped beside the checkpoint
                    sidecar = checkpoint.with_suffix(".curves.json")
                    if not shipped:
                        curves = read_curves(chain_last)
                    elif sidecar.exists():
                        curves = json.loads(sidecar.read_text())
                result = run_layout_row(row, suite, checkpoint, opts, splits, validation(row.cfg), spec, curves)
            row_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(row_dir / "row.json", json.dumps({"spec": spec, "checkpoint": str(checkpoint), "finished": utc_now().isoformat()}, indent=1, default=str))
            group.all_gather(None, f"row {row.slug}")
        records.append((row, result))
    if not main:
        return {}
    return write_outputs(suite, records, columns, opts, splits, log)


def write_outputs(suite: Suite, records: list[tuple[Row, dict]], columns: list[str], opts: AblateOptions, splits: Splits, log=print) -> dict[str, Path]:
    out = Path(opts.out)
    table_rows = []
    for row, result in records:
        metrics = result["metrics"]
        table_rows.append(ablation_report.TableRow(
            label=row.label, slug=row.slug, cells=row.cells,
            values={c: (math.nan if metrics.get(c, {}).get("value") is None else float(metrics[c]["value"])) for c in columns},
            n=int(result.get("n_scored", 0))))
    info = {}
    for _, result in records:
        for c in columns:
            m = result["metrics"].get(c)
            if m is not None and c not in info:
                info[c] = {"higher_is_better": bool(m.get("higher_is_better", False)), "table_scale": float(m.get("table_scale", 1.0)),
                           "display": m.get("display", c)}
    n_word = "test" if suite.kind == "generate" else "validation"
    notes = (f"n = {max((r.n for r in table_rows), default=0)} {n_word} clips; training and sampling seed {opts.seed}; "
             + (("shipped checkpoints" + ("; rows without one trained here" if any(r.trains_on_use for r, _ in records) else "")) if opts.pretrained else "rows retrained" + (f" for {opts.steps} steps per stage" if opts.steps else ""))
             + f"; preset {opts.preset}; "
             + (f"synthetic benchmark v{splits.notes.get('synthetic_version', 1)}, data seed {splits.notes.get('data_seed')}" if splits.synthetic else f"data {splits.notes.get('data')}"))
    paths = ablation_report.write_ablation_tables(out / "tables", suite.name, suite.title, table_rows, columns, info, suite.descriptors, notes,
                                                  extra={"seed": opts.seed, "preset": opts.preset, **splits.notes})
    if suite.kind == "resolution":
        curves = {}
        for row, result in records:
            if result.get("curves") and result["curves"]["step"]:
                curves[row.label] = result["curves"]
        if curves:
            (out / "figures").mkdir(parents=True, exist_ok=True)
            plot_layout_resolution(curves, out / "figures" / suite.name)
            paths["png"], paths["pdf"] = out / "figures" / f"{suite.name}.png", out / "figures" / f"{suite.name}.pdf"
        else:
            log(f"  {suite.name}: no training curves (shipped checkpoints carry none); figure not drawn")
    return paths


def run_suites(name_or_path: str, opts: AblateOptions, log=print, group: RankGroup | None = None) -> dict[str, dict[str, Path]]:
    """Check the whole suite (and, with ``--pretrained``, that every row has a checkpoint) before
    any work, then run each suite in turn; returns ``{suite: {format: path}}`` (``{}`` entries on
    the other ranks of a torchrun launch)."""
    suites = load_suite(name_or_path, opts.preset)
    check_pretrained(suites, opts)
    if opts.n < 1 or opts.n_val < 1 or opts.n_train < 1:
        raise ConfigError("--n, --n-val and --n-train must be at least 1")
    if opts.steps is not None and opts.steps < 1:
        raise ConfigError("--steps must be at least 1")
    return {s.name: run_suite(s, opts, log, group) for s in suites}
