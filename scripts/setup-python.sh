#!/usr/bin/env bash
# Installs the Python packages the ONNX model tests need (onnx, numpy, onnxruntime) into the
# project-local folder .deps/python, with `pip install --target`. Idempotent: a stamp file
# records the versions installed; when it matches, nothing is done.
#
# The exact onnxruntime version matters: the Rust ONNX Runtime backend loads
# .deps/python/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION.
set -euo pipefail

ORT_VERSION="1.31.1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="$ROOT/.deps/python"
STAMP="$TARGET/.stamp"
PYTHON="${PYTHON:-python3}"
WANT="onnxruntime==$ORT_VERSION onnx numpy python=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

if [[ -f "$STAMP" ]] && [[ "$(head -n1 "$STAMP")" == "$WANT" ]] \
    && [[ -f "$TARGET/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" ]] \
    && PYTHONPATH="$TARGET" "$PYTHON" -c 'import onnx, numpy, onnxruntime' 2>/dev/null; then
    echo "setup-python: already installed in $TARGET ($(tail -n1 "$STAMP")); nothing to do"
    exit 0
fi

echo "setup-python: installing onnx, numpy, onnxruntime==$ORT_VERSION into $TARGET"
rm -rf "$TARGET"
mkdir -p "$TARGET"
PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-input \
    --target "$TARGET" "onnxruntime==$ORT_VERSION" onnx numpy

if [[ ! -f "$TARGET/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" ]]; then
    echo "setup-python: error: $TARGET/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION missing after install" >&2
    exit 1
fi
VERSIONS="$(PYTHONPATH="$TARGET" "$PYTHON" -c \
    'import onnx, numpy, onnxruntime; print("onnx=%s numpy=%s onnxruntime=%s" % (onnx.__version__, numpy.__version__, onnxruntime.__version__))')"
printf '%s\n%s\n' "$WANT" "$VERSIONS" > "$STAMP"
echo "setup-python: installed $VERSIONS"
