#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv) from the package registries.
#
#   bash scripts/setup_env.sh            # torch + torchvision, detectron2 v0.6, the kit and its tools
#
# Every pip install runs with `-c constraints.txt`: the exact versions the test suite last passed
# with, so a machine set up next month gets what CI tested (pyproject.toml lets them float). Refresh it
# with `make constraints` (scripts/refresh_constraints.sh); CONSTRAINTS= (empty) installs without.
#
# Re-running is fast: each step is skipped when what it installs is already there with the
# pinned version (a stamp file records the inputs of the last successful run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
TORCHVISION_VERSION="${TORCHVISION_VERSION:-0.29.1}"
DETECTRON2_SDIST="pb1-detectron2==0.6"
BUILD_DIR="$ROOT/.build"
CONSTRAINTS="${CONSTRAINTS-$ROOT/constraints.txt}"
# detectron2 is rebuilt whenever the source patches change.
PATCH_ID="$(sha256sum "$ROOT/scripts/patch_detectron2.py" | cut -c1-16)"

command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
if [ -n "$CONSTRAINTS" ]; then
  [ -f "$CONSTRAINTS" ] || { echo "error: constraints file $CONSTRAINTS not found (CONSTRAINTS= installs without)" >&2; exit 1; }
  log "versions pinned by $CONSTRAINTS"
fi
# Every install (not download) goes through the constraints file. pip byte-compiles each package
# on one core as it installs it; --no-compile leaves that to one parallel compileall at the end.
pip_install() { if [ -n "$CONSTRAINTS" ]; then pip_ install --no-compile -c "$CONSTRAINTS" "$@"; else pip_ install --no-compile "$@"; fi; }
# pip with this machine's noise filtered: warnings about local index folders that do not exist.
pip_() { "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

# The stamp lists everything that decides the environment: when none of it changed, we are done.
STAMP="$VENV/.motion-keypoints-stamp"
want_stamp="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup_env.sh" "$ROOT/scripts/patch_detectron2.py" ${CONSTRAINTS:+"$CONSTRAINTS"} | sha256sum | cut -c1-16) torch=$TORCH_VERSION tv=$TORCHVISION_VERSION constraints=${CONSTRAINTS:+yes}"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ] && "$PY" -c "import detectron2, motion_keypoints" 2>/dev/null; then
  log "environment up to date ($VENV)"
  exit 0
fi

log "build tools (setuptools>=77,<82 for the detectron2 sdist build)"
pip_install -q "setuptools>=77,<82" wheel

have_torch="$("$PY" -c 'import torch, torchvision; print(torch.__version__.split("+")[0], torchvision.__version__.split("+")[0])' 2>/dev/null || true)"
if [ "$have_torch" != "$TORCH_VERSION $TORCHVISION_VERSION" ]; then
  # A matching pair (a CUDA build; runs on CPU). Not the CPU-only torch 2.13.0 file: PyPI's torchvision cannot load beside it.
  log "torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION (local wheels where the machine has them, else PyPI)"
  pip_install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

# Installed, with its model-zoo YAMLs and our placeholder extension (checked without importing it).
d2_ok='import importlib.util as u, os, pathlib as p; d = p.Path(u.find_spec("detectron2").origin).parent; assert (d / "model_zoo/configs/COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml").is_file(); assert "PATCH_ID = \"%s\"" % os.environ["PATCH_ID"] in (d / "_C.py").read_text()'
if ! PATCH_ID="$PATCH_ID" "$PY" -c "$d2_ok" 2>/dev/null; then
  log "detectron2 v0.6 from the $DETECTRON2_SDIST sdist, pure Python (ROIAlign/NMS come from torchvision)"
  rm -rf "$BUILD_DIR/detectron2" && mkdir -p "$BUILD_DIR/detectron2"
  pip_ download -q --no-deps --no-binary :all: --no-build-isolation \
      "$DETECTRON2_SDIST" -d "$BUILD_DIR/detectron2"
  tar -xzf "$BUILD_DIR"/detectron2/*.tar.gz -C "$BUILD_DIR/detectron2"
  src="$(find "$BUILD_DIR/detectron2" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  "$PY" "$ROOT/scripts/patch_detectron2.py" "$src"
  pip_install -q --no-build-isolation "$src"
fi

log "the kit (editable) and its tools"
pip_install -q --no-build-isolation -e "$ROOT[dev]"

# Byte-compile what was installed, on every core (a process started later imports torch and
# detectron2 from .pyc files, also where PYTHONDONTWRITEBYTECODE keeps it from writing its own).
# The packages' own test folders (tests/, test/: a quarter of the files, pandas' and sympy's
# mostly) are never imported: skipping them takes 40 % off the compile.
log "byte-compiling the environment"
"$PY" -m compileall -q -j 0 -x '/tests?/' "$("$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null 2>&1 || true

# detectron2 must work on its own (no kit import first), then the kit on top of it.
PYTHONWARNINGS=ignore "$PY" -c "import detectron2; from detectron2 import model_zoo; import motion_keypoints; print('[setup] ok: detectron2', detectron2.__version__)"
echo "$want_stamp" > "$STAMP"
