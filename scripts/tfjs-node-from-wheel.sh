#!/usr/bin/env bash
# Builds @tensorflow/tfjs-node 4.22 without its libtensorflow download, from the TensorFlow C
# library inside a PyPI `tensorflow-cpu` wheel.
#
#   scripts/tfjs-node-from-wheel.sh            install into ./node_modules (not saved to package.json)
#
# tfjs-node's install script downloads libtensorflow 2.9.1 from storage.googleapis.com; machines
# that reach only npm and PyPI cannot run it. The wheel holds the same C API:
#   - TensorFlow 2.21.0 (tensorflow_cpu-2.21.0-cp311, manylinux_2_27): tensorflow/libtensorflow_cc.so.2
#     exports the C and eager C API (197 TFE_* symbols, TFE_NewOp, TFE_Execute, TF_LoadLibrary, ...,
#     versioned @@tensorflow) and needs only libtensorflow_framework.so.2 and the C/C++ runtime
#     (readelf -d: no libpython). 2.16.2 has the same exports; 2.21.0 is pinned as the newest.
#   - The wheel's tensorflow/include has the C headers tfjs-node's binding.gyp compiles against.
# The binding links `-ltensorflow`; deps/lib/libtensorflow.so points at libtensorflow_cc.so.2, so
# the built addon's DT_NEEDED is libtensorflow_cc.so.2 (its soname), found through the binding's
# rpath $ORIGIN/../../deps/lib.
#
# Environment:
#   TF_WHEEL_VERSION   (2.21.0)  which tensorflow-cpu wheel
#   KARAT_TF_CACHE     (~/.cache/tfjs-karat)  where the wheel and the extracted libraries stay
#   PYTHON             (python3) a Python whose pip downloads the wheel (it must match the
#                      wheel's cp tag only for pip's choice of file; nothing of Python runs TF)
# A rerun reuses the cached wheel and the extracted files, and skips the build when the binding
# is already built against the same wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

TFJS_NODE_VERSION=4.22.0
TF_WHEEL_VERSION="${TF_WHEEL_VERSION:-2.21.0}"
CACHE="${KARAT_TF_CACHE:-$HOME/.cache/tfjs-karat}"
PYTHON="${PYTHON:-python3}"
WHEELS="$CACHE/wheels"
EXTRACT="$CACHE/tensorflow-$TF_WHEEL_VERSION"
PKG=node_modules/@tensorflow/tfjs-node
STAMP="$PKG/deps/.karat-from-wheel"

log() { echo "[tfjs-node-from-wheel] $*" >&2; }

# 5. (also on a rerun) the fused op library's CPU kernels and its TF_LoadLibrary addon, linked
# against this libtensorflow (g++ only; make skips what is up to date).
build_op_library() {
  log "make -C kernels-cuda tfops-cpu (the fused Fourier-KArAt op for TensorFlow, CPU kernels)"
  make -s -C kernels-cuda tfops-cpu >&2
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$TFJS_NODE_VERSION tensorflow-cpu==$TF_WHEEL_VERSION" ] \
   && [ -f "$PKG/lib/napi-v8/tfjs_binding.node" ]; then
  log "already built ($(cat "$STAMP"))"
  build_op_library
  exit 0
fi

# 1. The npm package, without its install script, and without touching package.json or the lock.
if [ "$(node -p "try{require('./$PKG/package.json').version}catch(e){''}")" != "$TFJS_NODE_VERSION" ]; then
  log "npm install @tensorflow/tfjs-node@$TFJS_NODE_VERSION --ignore-scripts --no-save"
  npm install --no-save --ignore-scripts --no-audit --no-fund "@tensorflow/tfjs-node@$TFJS_NODE_VERSION" >&2
fi

# 2. The wheel (cached), and only the libraries and headers out of it.
mkdir -p "$WHEELS"
wheel=$(ls "$WHEELS"/tensorflow_cpu-"$TF_WHEEL_VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  log "pip download tensorflow-cpu==$TF_WHEEL_VERSION"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$WHEELS" "tensorflow-cpu==$TF_WHEEL_VERSION" >&2
  wheel=$(ls "$WHEELS"/tensorflow_cpu-"$TF_WHEEL_VERSION"-*.whl | head -n1)
fi
if [ ! -f "$EXTRACT/.complete" ]; then
  log "extracting libraries and headers from $(basename "$wheel")"
  rm -rf "$EXTRACT"; mkdir -p "$EXTRACT"
  unzip -q -o -d "$EXTRACT" "$wheel" \
    'tensorflow/libtensorflow_cc.so.2' 'tensorflow/libtensorflow_framework.so.2' \
    'tensorflow/include/*' >&2
  touch "$EXTRACT/.complete"
fi
TF="$EXTRACT/tensorflow"
# The C API tfjs-node calls must be exported; fail here with the missing name rather than at link.
exports=$(nm -D --defined-only "$TF/libtensorflow_cc.so.2" "$TF/libtensorflow_framework.so.2")
for sym in TFE_NewContext TFE_NewOp TFE_Execute TF_LoadLibrary TF_NewTensor; do
  grep -qE " T $sym(@|$)" <<<"$exports" \
    || { log "libtensorflow_cc.so.2 / libtensorflow_framework.so.2 of tensorflow-cpu $TF_WHEEL_VERSION do not export $sym"; exit 1; }
done

# 3. deps/include and deps/lib as binding.gyp expects them.
rm -rf "$PKG/deps"; mkdir -p "$PKG/deps/include" "$PKG/deps/lib"
cp -r "$TF/include/tensorflow" "$TF/include/tsl" "$TF/include/xla" "$PKG/deps/include/" 2>/dev/null \
  || cp -r "$TF/include/tensorflow" "$PKG/deps/include/"
# Hard links when the cache is on the same file system (the libraries are ~850 MB), else copies.
cp -l "$TF/libtensorflow_cc.so.2" "$TF/libtensorflow_framework.so.2" "$PKG/deps/lib/" 2>/dev/null \
  || cp "$TF/libtensorflow_cc.so.2" "$TF/libtensorflow_framework.so.2" "$PKG/deps/lib/"
ln -s libtensorflow_cc.so.2 "$PKG/deps/lib/libtensorflow.so"
ln -s libtensorflow_cc.so.2 "$PKG/deps/lib/libtensorflow.so.2"
ln -s libtensorflow_framework.so.2 "$PKG/deps/lib/libtensorflow_framework.so"

# 4. The binding from source, against this machine's Node headers.
nodedir=$(node -p "require('path').resolve(process.execPath, '../..')")
if [ ! -f "$nodedir/include/node/node_api.h" ]; then
  log "no Node headers at $nodedir/include/node (Debian/NodeSource: the nodejs package ships them)"; exit 1
fi
log "building tfjs_binding.node (--build-from-source, --nodedir=$nodedir)"
(cd "$PKG" && npx --no-install node-pre-gyp install --build-from-source --nodedir="$nodedir" >&2)
echo "$TFJS_NODE_VERSION tensorflow-cpu==$TF_WHEEL_VERSION" > "$STAMP"
node -e 'const tf = require("@tensorflow/tfjs-node"); tf.add(tf.scalar(1), tf.scalar(2)).dataSync(); console.error("[tfjs-node-from-wheel] ok: backend", tf.getBackend())' 2>&1 | grep -v -E "^(WARNING|I0000|To enable)" >&2
rm -f kernels-cuda/build/libkarat_tf_ops_cpu.so  # relink against the new libtensorflow
build_op_library
log "done: $PKG (tensorflow-cpu==$TF_WHEEL_VERSION)"
