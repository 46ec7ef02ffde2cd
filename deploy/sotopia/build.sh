#!/usr/bin/env bash
# Build (or reuse) sotopia's own environment, for SOTOPIA-EVAL with sotopia's evaluator (ADR 0025; docs/user-guide.md,
# Evaluation). sotopia cannot share omega-web's virtualenv: its dependencies need older rich, redis, click and typer
# than constraints.txt pins. It gets a virtualenv of its own with the [sotopia] extra of pyproject.toml, pinned by
# deploy/sotopia/constraints.txt, in a cache outside the clone that later runs reuse:
#   ${OMEGA_SOTOPIA_CACHE:-${XDG_CACHE_HOME:-~/.cache}/omega-web/sotopia}/venv
# which is where omega-web looks by default (OMEGA_SOTOPIA_PYTHON overrides it).
#
#   build.sh           build it if missing or made from other requirements (about 2 minutes; seconds after)
#   build.sh --freeze  build it, then rewrite deploy/sotopia/constraints.txt from what got installed
#
# Prints the interpreter's path as a shell assignment on standard output (eval-able; everything else goes to
# standard error):  eval "$(bash deploy/sotopia/build.sh)"
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
ROOT=${OMEGA_SOTOPIA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omega-web/sotopia}
VENV=$ROOT/venv
CONSTRAINTS=deploy/sotopia/constraints.txt

say() { echo "sotopia: $*" >&2; }
# pip's output never reaches standard output (the caller evals it). This machine's pip configuration may name a
# local index folder that is missing; hide only that warning.
quiet_pip() { "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2; }

# The [sotopia] extra, read from pyproject.toml (the one place it is written).
requirements=$("$PYTHON" -c '
import sys, tomllib
extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["sotopia"]
print("\n".join(extra))
')
[ -n "$requirements" ] || { say "pyproject.toml has no [sotopia] extra"; exit 1; }
stamp=$( { echo "$requirements"; grep -v '^#' "$CONSTRAINTS"; "$PYTHON" -c 'import sys; print(sys.version)'; } \
  | sha256sum | cut -c1-16)

ready() {
  [ -f "$VENV/.omega-stamp" ] && [ "$(cat "$VENV/.omega-stamp")" = "$stamp" ] \
    && LITELLM_LOCAL_MODEL_COST_MAP=True SOTOPIA_STORAGE_BACKEND=local HOME=$ROOT \
       "$VENV/bin/python" -c 'import sotopia.envs.evaluators' >/dev/null 2>&1
}

mkdir -p "$ROOT"
# one build at a time in a cache (two CI runs on one machine would otherwise delete each other's tree)
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
  say "another build holds $ROOT/.lock; waiting for it"
  flock 9
fi

if ready && [ "${1:-}" != "--freeze" ]; then
  say "reusing $VENV ($("$VENV/bin/pip" list --format=freeze 2>/dev/null | grep -i '^sotopia==' || true))"
else
  say "installing $(echo "$requirements" | tr '\n' ' ')into $VENV (about 2 minutes)"
  began=$(date +%s)
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  if [ "${1:-}" = "--freeze" ]; then
    # shellcheck disable=SC2086
    quiet_pip "$VENV/bin/pip" install --quiet --disable-pip-version-check --root-user-action=ignore $requirements
  else
    # shellcheck disable=SC2086
    quiet_pip "$VENV/bin/pip" install --quiet --disable-pip-version-check --root-user-action=ignore \
      -c "$CONSTRAINTS" $requirements
  fi
  if "$VENV/bin/pip" list --format=freeze 2>/dev/null | grep -qiE '^(torch|nvidia)'; then
    say "torch or CUDA packages got installed into sotopia's environment; they are not needed"; exit 1
  fi
  echo "$stamp" >"$VENV/.omega-stamp"
  ready || { say "sotopia does not import in $VENV"; exit 1; }
  say "installed in $(( $(date +%s) - began )) s"
fi

if [ "${1:-}" = "--freeze" ]; then
  { sed -n '1,3p' "$CONSTRAINTS"; "$VENV/bin/pip" freeze --disable-pip-version-check 2>/dev/null; } >"$CONSTRAINTS.new"
  mv "$CONSTRAINTS.new" "$CONSTRAINTS"
  say "rewrote $CONSTRAINTS"
  # the stamp names the constraints it was built from
  stamp=$( { echo "$requirements"; grep -v '^#' "$CONSTRAINTS"; "$PYTHON" -c 'import sys; print(sys.version)'; } \
    | sha256sum | cut -c1-16)
  echo "$stamp" >"$VENV/.omega-stamp"
fi

echo "OMEGA_SOTOPIA_PYTHON=$VENV/bin/python"
