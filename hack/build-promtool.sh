#!/usr/bin/env bash
# Builds promtool (rule unit tests: `promtool test rules`) from the Prometheus Go module into
# the same cache as the control plane. Rebuilt only when the binary is missing.
# No prebuilt download: the module proxy serves the source, go.sum (written on first resolve) pins it.
set -euo pipefail

PROM_VERSION="${PROM_VERSION:-v0.316.0}"
CACHE="${ACGS_CACHE:-$HOME/.cache/acgs}"
BIN="$CACHE/bin/prometheus-$PROM_VERSION"

if [[ -x "$BIN/promtool" ]]; then echo "$BIN/promtool"; exit 0; fi
mkdir -p "$BIN"

source "$(dirname "$0")/go-env.sh"

dir="$CACHE/src/prometheus-$PROM_VERSION"
mkdir -p "$dir"
cat > "$dir/go.mod" <<MOD
module acgs.io/localpromtool

go 1.26.0

require github.com/prometheus/prometheus $PROM_VERSION
MOD
cd "$dir"
echo "[build-promtool] resolving github.com/prometheus/prometheus $PROM_VERSION" >&2
go get -tags remove_all_sd "github.com/prometheus/prometheus/cmd/promtool@$PROM_VERSION" >&2
echo "[build-promtool] building promtool (cold: a few minutes)" >&2
# remove_all_sd: no service-discovery plugins (cloud SDKs, client-go); `promtool check rules` and
# `promtool test rules` do not use them, and the cold build is several times smaller.
go build -trimpath -tags remove_all_sd \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=${PROM_VERSION#v}" \
  -o "$BIN/promtool.tmp" github.com/prometheus/prometheus/cmd/promtool
mv "$BIN/promtool.tmp" "$BIN/promtool"
echo "$BIN/promtool"
