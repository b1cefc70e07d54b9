#!/usr/bin/env bash
# Installs the inference engines the backend plugins load at run time into project-local
# folders, idempotently (a stamp file per engine records what is installed):
#   .deps/ort    ONNX Runtime 1.31.1 shared library (PyPI wheel `onnxruntime`), unless
#                scripts/setup-python.sh already put the same library in .deps/python
#   .deps/torch  LibTorch 2.13.0 (PyPI wheel `torch` with its CUDA runtime stubs), for the
#                tch plugin: LIBTORCH=.deps/torch/torch, LD_LIBRARY_PATH=.deps/torch/torch/lib
# Set DICESIM_SKIP_TORCH=1 to skip the ~580 MB LibTorch download.
set -euo pipefail

ORT_VERSION="1.31.1"
TORCH_VERSION="2.13.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
pip_target() {
    local target="$1"; shift
    PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet --disable-pip-version-check \
        --no-input --no-deps --target "$target" "$@"
}

# ONNX Runtime
ORT_LIB_PY="$ROOT/.deps/python/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
ORT_DIR="$ROOT/.deps/ort"
ORT_LIB="$ORT_DIR/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
if [[ -f "$ORT_LIB_PY" ]]; then
    echo "setup-engines: onnxruntime $ORT_VERSION present in .deps/python; nothing to do"
elif [[ -f "$ORT_LIB" && "$(cat "$ORT_DIR/.stamp" 2>/dev/null)" == "onnxruntime==$ORT_VERSION" ]]; then
    echo "setup-engines: onnxruntime $ORT_VERSION already in $ORT_DIR; nothing to do"
else
    echo "setup-engines: installing onnxruntime==$ORT_VERSION into $ORT_DIR"
    rm -rf "$ORT_DIR"
    mkdir -p "$ORT_DIR"
    pip_target "$ORT_DIR" "onnxruntime==$ORT_VERSION"
    [[ -f "$ORT_LIB" ]] || { echo "setup-engines: error: $ORT_LIB missing after install" >&2; exit 1; }
    echo "onnxruntime==$ORT_VERSION" > "$ORT_DIR/.stamp"
fi

# LibTorch
TORCH_DIR="$ROOT/.deps/torch"
TORCH_WANT="torch==$TORCH_VERSION nvidia-cuda-runtime==13.0.96.* nvidia-cuda-cupti==13.0.85.*"
if [[ "${DICESIM_SKIP_TORCH:-0}" == "1" ]]; then
    echo "setup-engines: DICESIM_SKIP_TORCH=1: not installing LibTorch"
elif [[ -f "$TORCH_DIR/torch/lib/libtorch_cpu.so" && "$(cat "$TORCH_DIR/.stamp" 2>/dev/null)" == "$TORCH_WANT" ]]; then
    echo "setup-engines: torch $TORCH_VERSION already in $TORCH_DIR; nothing to do"
else
    echo "setup-engines: installing torch==$TORCH_VERSION into $TORCH_DIR (about 580 MB)"
    rm -rf "$TORCH_DIR"
    mkdir -p "$TORCH_DIR"
    # shellcheck disable=SC2086
    pip_target "$TORCH_DIR" $TORCH_WANT
    [[ -f "$TORCH_DIR/torch/lib/libtorch_cpu.so" ]] \
        || { echo "setup-engines: error: libtorch_cpu.so missing after install" >&2; exit 1; }
    echo "$TORCH_WANT" > "$TORCH_DIR/.stamp"
fi
