#!/usr/bin/env bash
# Builds the Kueue controller manager from its Go module (sigs.k8s.io/kueue) into the same cache as
# the control plane, with the CRDs and webhook manifests of that exact version copied from the module
# source (config/components/crd/bases, config/components/webhook). Rebuilt only when one is missing.
# No prebuilt download or container image: the module proxy serves the source, go.sum (written on
# first resolve) pins it.
set -euo pipefail

KUEUE_VERSION="${KUEUE_VERSION:-v0.17.0}"
CACHE="${ACGS_CACHE:-$HOME/.cache/acgs}"
BIN="$CACHE/bin/kueue-$KUEUE_VERSION"

if [[ -x "$BIN/kueue" && -f "$BIN/webhook-manifests.yaml" && -n "$(ls "$BIN/crd/"*.yaml 2>/dev/null)" ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN"

source "$(dirname "$0")/go-env.sh"

dir="$CACHE/src/kueue-$KUEUE_VERSION"
mkdir -p "$dir"
cat > "$dir/go.mod" <<MOD
module acgs.io/localkueue

go 1.26.0

require sigs.k8s.io/kueue $KUEUE_VERSION
MOD
cd "$dir"
echo "[build-kueue] resolving sigs.k8s.io/kueue $KUEUE_VERSION" >&2
go get "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION" >&2
echo "[build-kueue] building the kueue controller manager (cold: several minutes)" >&2
go build -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
  -o "$BIN/kueue.tmp" sigs.k8s.io/kueue/cmd/kueue
mv "$BIN/kueue.tmp" "$BIN/kueue"
src="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
mkdir -p "$BIN/crd"
cp "$src"/config/components/crd/bases/*.yaml "$BIN/crd/"
cp "$src"/config/components/webhook/manifests.yaml "$BIN/webhook-manifests.yaml"
chmod u+w "$BIN/crd/"*.yaml "$BIN/webhook-manifests.yaml"
echo "$BIN"
