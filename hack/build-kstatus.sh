#!/usr/bin/env bash
# Builds hack/kstatus-check (what sigs.k8s.io/cli-utils/pkg/kstatus computes for an object) into
# the same cache as the control plane. Rebuilt only when the binary is missing or its source changed.
# No prebuilt download: the module proxy serves the source, go.sum (written on first resolve) pins it.
set -euo pipefail

CLI_UTILS_VERSION="${CLI_UTILS_VERSION:-v0.37.2}"
CACHE="${ACGS_CACHE:-$HOME/.cache/acgs}"
SRC="$(cd "$(dirname "$0")/kstatus-check" && pwd)/main.go"
SUM="$(sha256sum "$SRC" | cut -c1-12)"
BIN="$CACHE/bin/kstatus-cli-utils-$CLI_UTILS_VERSION"

if [[ -x "$BIN/kstatus-check" && "$(cat "$BIN/source.sha256" 2>/dev/null)" == "$SUM" ]]; then
  echo "$BIN/kstatus-check"; exit 0
fi
mkdir -p "$BIN"

source "$(dirname "$0")/go-env.sh"

dir="$CACHE/src/kstatus-check-$CLI_UTILS_VERSION"
mkdir -p "$dir"
cp "$SRC" "$dir/main.go"
cat > "$dir/go.mod" <<MOD
module acgs.io/kstatuscheck

go 1.24

require sigs.k8s.io/cli-utils $CLI_UTILS_VERSION
MOD
cd "$dir"
echo "[build-kstatus] resolving sigs.k8s.io/cli-utils $CLI_UTILS_VERSION" >&2
go mod tidy >&2
echo "[build-kstatus] building kstatus-check" >&2
go build -trimpath -ldflags "-s -w" -o "$BIN/kstatus-check.tmp" .
mv "$BIN/kstatus-check.tmp" "$BIN/kstatus-check"
echo "$SUM" > "$BIN/source.sha256"
echo "$BIN/kstatus-check"
