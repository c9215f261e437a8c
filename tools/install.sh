#!/usr/bin/env bash
# Install the pinned cast_mm stack into the active Python environment.
#
#   bash tools/install.sh            # stack + cast_mm (editable) + self-check
#   bash tools/install.sh --tests    # also the test requirements (and, as root, chromium)
#   bash tools/install.sh --demo     # also the hierarchy explorer's (Gradio)
#   bash tools/install.sh --mmcv-cuda-ops  # mmcv's CUDA ops too (needs nvcc; for other
#                                    # mmseg models in the same environment; CAST needs none)
#   bash tools/install.sh --print-mmcv-build-env  # how mmcv would be built, then exit
#
# Safe to re-run: every step is skipped when its result is already there. mmcv 2.1.0 has no
# wheel on PyPI, so it is built once from the sdist (with CPU ops, also on a GPU machine, C++20
# for torch 2.14 headers) and the wheel is kept in $CAST_MM_CACHE (default
# ~/.cache/cast_mm/wheels; CUDA-ops builds in its cuda-ops/); later runs install it in seconds.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
CACHE="${CAST_MM_CACHE:-$HOME/.cache/cast_mm/wheels}"
WITH_TESTS=0
WITH_DEMO=0
MMCV_CUDA_OPS=0
PRINT_MMCV_ENV=0
for arg in "$@"; do
  case "$arg" in
    --tests) WITH_TESTS=1 ;;
    --demo) WITH_DEMO=1 ;;
    --mmcv-cuda-ops) MMCV_CUDA_OPS=1 ;;
    --print-mmcv-build-env) PRINT_MMCV_ENV=1 ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (use --tests, --demo, --mmcv-cuda-ops or --help)" >&2
       exit 2 ;;
  esac
done

# mmcv_build_env CUDA_OPS: the environment of the mmcv build, one VAR=value per line.
# mmcv's setup.py compiles its CUDA ops whenever torch sees a GPU; CAST uses none of them, so
# by default the build hides the GPUs and gets CPU ops (same build as on a CPU machine, no
# CUDA compiler). CUDA_OPS=1 asks for the CUDA ops and needs nvcc.
mmcv_build_env() {
  if [ "$1" = 1 ]; then
    local nvcc=""
    if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then nvcc="$CUDA_HOME/bin/nvcc";
    else nvcc="$(command -v nvcc || true)"; fi
    if [ -z "$nvcc" ]; then
      echo "install.sh: --mmcv-cuda-ops needs a CUDA compiler matching torch's CUDA: nvcc on" \
        "PATH or in \$CUDA_HOME/bin (none found); leave the option out for CAST alone" >&2
      return 2
    fi
    printf 'FORCE_CUDA=1\nMMCV_WHEEL_DIR=%s\n' "$CACHE/cuda-ops"
  else
    printf 'FORCE_CUDA=0\nCUDA_VISIBLE_DEVICES=\nMMCV_WHEEL_DIR=%s\n' "$CACHE"
  fi
}
if [ "$PRINT_MMCV_ENV" = 1 ]; then
  mmcv_build_env "$MMCV_CUDA_OPS"
  exit $?
fi
MMCV_ENV="$(mmcv_build_env "$MMCV_CUDA_OPS")"
MMCV_WHEEL_DIR="$(printf '%s\n' "$MMCV_ENV" | sed -n 's/^MMCV_WHEEL_DIR=//p')"

log() { printf '[cast_mm install] %s\n' "$*"; }
pip_install() { "$PY" -m pip install --disable-pip-version-check --no-input "$@"; }
mkdir -p "$CACHE"

log "python: $("$PY" --version 2>&1) at $(command -v "$PY")"

# 1. Build tools and torch (torch 2.14.1 + torchvision 0.29.1 are what timm and mmcv build against).
pip_install -q "setuptools>=65,<82" wheel packaging ninja
pip_install -q torch==2.14.1 torchvision==0.29.1

# 2. OpenMMLab stack, DGL, timm and the undeclared imports of mmseg.
pip_install -q -r "$ROOT/requirements/runtime.txt"

# 3. mmcv 2.1.0 with compiled ops (mmseg imports mmcv.ops unconditionally); CPU ops unless
#    --mmcv-cuda-ops (see mmcv_build_env).
if "$PY" -c "import mmcv, mmcv.ops, sys; from mmcv.ops import get_compiling_cuda_version as v
sys.exit(mmcv.__version__ != '2.1.0' or ($MMCV_CUDA_OPS and v() == 'not available'))" \
    2>/dev/null; then
  log "mmcv 2.1.0 with ops already installed"
else
  mkdir -p "$MMCV_WHEEL_DIR"
  WHEEL="$(ls "$MMCV_WHEEL_DIR"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)"
  if [ -z "$WHEEL" ]; then
    log "building mmcv 2.1.0 with ops from the PyPI sdist (about 15 minutes on 2 cores, once)"
    BUILD="$(mktemp -d)"
    "$PY" -m pip download -q --no-deps --no-binary :all: mmcv==2.1.0 -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-2.1.0.tar.gz -C "$BUILD"
    # torch 2.14 headers need C++20; the sdist hard-codes C++14/17.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$BUILD"/mmcv-2.1.0/setup.py
    # shellcheck disable=SC2046  # one VAR=value word per line of mmcv_build_env
    env MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      $(printf '%s\n' "$MMCV_ENV" | grep -v '^MMCV_WHEEL_DIR=') \
      "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$MMCV_WHEEL_DIR" \
      "$BUILD"/mmcv-2.1.0
    rm -rf "$BUILD"
    WHEEL="$(ls "$MMCV_WHEEL_DIR"/mmcv-2.1.0-*.whl | head -n 1)"
  else
    log "using cached mmcv wheel $WHEEL"
  fi
  pip_install -q --no-deps "$WHEEL"
fi

# 4. OpenCV contrib (SEEDS lives in cv2.ximgproc). mmengine pulls opencv-python, which owns the
#    same cv2 package; put the contrib build's files last so they are the ones imported.
if ! "$PY" -c "import cv2, sys; sys.exit(not hasattr(cv2, 'ximgproc'))" 2>/dev/null; then
  log "installing the OpenCV contrib build over cv2"
  CV_SPEC="$(grep -E '^opencv-contrib-python-headless' "$ROOT/requirements/runtime.txt")"
  pip_install -q --force-reinstall --no-deps "$CV_SPEC"
fi

# 5. cast_mm itself (editable, so configs/ and tools/ stay where they are), compiling its C++
#    operators (cast_mm/ops/csrc, about a minute; CAST_MM_WITH_OPS=0 skips them).
# --use-pep517: the compiled operators build against the installed torch, in place (pip 23 would
# otherwise take the legacy `setup.py develop` path, which newer setuptools runs in isolation).
pip_install -q --no-deps --no-build-isolation --use-pep517 -e "$ROOT"
if [ "$WITH_TESTS" = 1 ]; then
  pip_install -q -r "$ROOT/requirements/tests.txt" -c "$ROOT/requirements/runtime.txt"
fi
if [ "$WITH_DEMO" = 1 ]; then
  pip_install -q -r "$ROOT/requirements/demo.txt"
fi
# The explorer's browser tests drive Debian's chromium (never a Playwright browser download).
if [ "$WITH_TESTS" = 1 ] && ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing chromium for the browser tests"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } ||
      log "apt-get could not install chromium: the browser tests will be skipped"
  else
    log "chromium not installed (needs root and apt-get): the browser tests will be skipped"
  fi
fi

# 6. Self-check.
"$PY" - <<'PY'
import cv2
import dgl.geometry  # noqa: F401
import mmseg.models  # noqa: F401
import mmpretrain.models  # noqa: F401
import mmcv, mmcv.ops  # noqa: F401,E401
import torch
import cast_mm
from cast_mm.ops import extension
assert hasattr(cv2, 'ximgproc'), 'cv2 is not the contrib build: cv2.ximgproc (SEEDS) is missing'
print(f'[cast_mm install] ok: torch {torch.__version__}, mmcv {mmcv.__version__}, '
      f'cv2 {cv2.__version__} (ximgproc), cast_mm {cast_mm.__version__} '
      f'(compiled CPU operators: {extension.status()})')
PY
