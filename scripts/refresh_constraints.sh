#!/usr/bin/env bash
# Refresh constraints.txt: the exact versions the test suite passed with (`make constraints`).
#
#   bash scripts/refresh_constraints.sh            # fresh venv, newest versions, full suite, freeze
#   FAST=1 bash scripts/refresh_constraints.sh     # the same with the fast tier only (not for a release)
#
# 1. creates a fresh virtual environment (.build/venv-refresh) WITHOUT constraints, so pip picks
#    the newest versions pyproject.toml allows (torch, torchvision, detectron2 stay pinned by setup_env.sh);
# 2. runs ruff and the test suite with it;
# 3. only when they pass, writes `pip freeze` (less the kit and detectron2, which are built here)
#    to constraints.txt (atomically). Review `git diff constraints.txt` and commit it.
# Run it whenever a dependency is added to pyproject.toml.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REFRESH_VENV:-$ROOT/.build/venv-refresh}"
OUT="$ROOT/constraints.txt"
cd "$ROOT"
log() { printf '[constraints] %s\n' "$*"; }

log "fresh environment $VENV without constraints"
rm -rf "$VENV"
VENV="$VENV" CONSTRAINTS="" bash scripts/setup_env.sh
PY="$VENV/bin/python"

log "ruff and the test suite with it"
"$PY" -m ruff check code tests benchmarks scripts
if [ -n "${FAST:-}" ]; then
  "$PY" -m pytest -q -m "not slow"
  tier="fast tier (pytest -m 'not slow')"
else
  "$PY" -m pytest -q
  tier="full suite"
fi

tmp="$(mktemp "$OUT.XXXXXX")"
{
  echo "# Exact versions the $tier passed with; used by scripts/setup_env.sh (pip -c)."
  echo "# Written by scripts/refresh_constraints.sh (make constraints) on $(date -u +%Y-%m-%d),"
  echo "# $("$PY" -c 'import platform; print("Python", platform.python_version(), platform.machine())')."
  echo "# Not listed: the kit and detectron2 (built from the pb1-detectron2 sdist by setup_env.sh)."
  "$PY" -m pip --disable-pip-version-check freeze --exclude-editable \
    | grep -viE '^(motion-keypoints|motion_keypoints|detectron2|pb1-detectron2)([=@ ]|$)' \
    | grep -v ' @ file://' \
    | LC_ALL=C sort -f
} > "$tmp"
mv "$tmp" "$OUT"
log "wrote $OUT ($(grep -vc '^#' "$OUT") packages); review with: git diff constraints.txt"
