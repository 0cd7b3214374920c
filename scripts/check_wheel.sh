#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment (no source tree on the path) and
# run the main job and `tiva-bench metrics` from an unrelated folder that has its own `metrics/`
# and `models/` packages. Usage: bash scripts/check_wheel.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
if [ $# -ge 1 ]; then WORK=$1; else WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi  # a folder of its own is removed at the end
PY=${PYTHON:-python3}
mkdir -p "$WORK"
rm -rf "$WORK/dist" "$WORK/venv" "$WORK/project"

echo "== building the wheel"
"$PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$REPO"
WHEEL=$(ls "$WORK"/dist/tiva_bench-*.whl)
echo "$WHEEL ($(du -h "$WHEEL" | cut -f1))"

echo "== checking its contents"
"$PY" - "$WHEEL" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = {n.split("/")[0] for n in names}
generic = sorted(t for t in tops if not (t == "tiva_bench" or t.startswith("tiva_bench-")))
assert not generic, f"generic top-level entries in the wheel: {generic}"
need = ["tiva_bench/models/tiva/assets/tiva-tiny.safetensors", "tiva_bench/models/tiva/assets/tiva-tiny-nolayout.safetensors",
        "tiva_bench/metrics/extractors/assets/synth_classifier.safetensors", "tiva_bench/metrics/extractors/assets/synth_classifier_v2.safetensors", "tiva_bench/configs/default.yaml",
        "tiva_bench/configs/suites/table5.yaml", "tiva_bench/models/tiva/assets/ablate-table3-g-mel.safetensors"]
missing = [n for n in need if n not in names]
assert not missing, f"missing from the wheel: {missing}"
assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names), "no licence file in the wheel"
size = sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist() if i.filename.endswith(".safetensors"))
print(f"ok: {len(names)} files, top level {sorted(tops)}, shipped checkpoints {size / 1e6:.1f} MB")
PY

echo "== installing into a fresh environment"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q -c "$REPO/constraints.txt" "$WHEEL"

echo "== running from a folder with its own metrics/ and models/ packages"
mkdir -p "$WORK/project"
for name in metrics models reports baselines; do
  mkdir -p "$WORK/project/$name"
  echo "raise ImportError('the project folder $name was imported instead of tiva-bench')" > "$WORK/project/$name/__init__.py"
done
cd "$WORK/project"
export TIVA_BENCH_CACHE="$WORK/cache"
"$WORK/venv/bin/python" - <<'PY'
import importlib.util, site, sys, pathlib
sys.path = [p for p in sys.path if p not in ("", ".")]
for name in ("metrics", "models", "reports", "baselines", "configs"):
    assert importlib.util.find_spec(name) is None, f"a top-level module {name!r} is installed"
sp = pathlib.Path(site.getsitepackages()[0])
assert not any((sp / n).exists() for n in ("metrics", "models", "reports", "baselines")), "generic folders in site-packages"
import tiva_bench.metrics, tiva_bench.models.tiva.pipeline as p
assert p.SHIPPED["tiva-tiny"].is_file(), p.SHIPPED
print("ok: no generic top-level module; tiva_bench from", pathlib.Path(tiva_bench.__file__).parent)
PY
"$WORK/venv/bin/python" -m tiva_bench metrics --list > /dev/null
"$WORK/venv/bin/tiva-bench" demo --n 8 --out "$WORK/project/demo" -q
test -s "$WORK/project/demo/tables/summary.md"
"$WORK/venv/bin/tiva-bench" metrics "$WORK/project/demo/gen/tiva-tiny" "$WORK/project/demo/synth/test" --window 10.24 \
    --metrics w_dis,dtw_dis,fad_synth,class_acc --out "$WORK/project/scores" -q
test -s "$WORK/project/scores/results.json"
echo "== wheel check passed"
