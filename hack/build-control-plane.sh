#!/usr/bin/env bash
# Builds the local control plane from Go modules into a cache outside the work tree:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
# Rebuilt only when a binary is missing. No container engine or prebuilt download is needed.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.1}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE="${ACGS_CACHE:-$HOME/.cache/acgs}"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

want=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
missing=()
for b in "${want[@]}"; do [[ -x "$BIN/$b" ]] || missing+=("$b"); done
if [[ ${#missing[@]} -eq 0 ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN"

source "$(dirname "$0")/go-env.sh"

log() { echo "[build-control-plane] $*" >&2; }

build_kubernetes() {
  local dir="$CACHE/src/kubernetes-$K8S_VERSION"
  mkdir -p "$dir"
  # The staging modules are replaced by their published versions (k8s.io/<name> v0.<minor>.<patch>).
  local gomod
  gomod=$(curl -fsS "${GOPROXY_URL:-https://proxy.golang.org}/k8s.io/kubernetes/@v/$K8S_VERSION.mod" 2>/dev/null || true)
  local staging
  if [[ -n "$gomod" ]]; then
    staging=$(printf '%s\n' "$gomod" | awk '/=> \.\/staging\/src\//{print $1}')
  else
    staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver streaming"
    staging=$(for s in $staging; do echo "k8s.io/$s"; done)
  fi
  {
    echo "module acgs.io/localcp"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for m in $staging; do
      case "$m" in k8s.io/sample-*) continue;; esac
      echo "	$m => $m $STAGING_VERSION"
    done
    echo ")"
  } > "$dir/go.mod"
  cd "$dir"
  log "resolving k8s.io/kubernetes $K8S_VERSION modules"
  go get "k8s.io/kubernetes@$K8S_VERSION" >&2
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ldflags; ldflags=$(k8s_ldflags "-X k8s.io/component-base/version.buildDate=$date")
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -x "$BIN/$c" ]] && continue
    log "building $c (cold: several minutes)"
    go build -trimpath -ldflags "$ldflags" -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$BIN/$c.tmp" "$BIN/$c"
  done
}

build_etcd() {
  [[ -x "$BIN/etcd" ]] && return
  local dir="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  cat > "$dir/go.mod" <<MOD
module acgs.io/localetcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cd "$dir"
  log "building etcd $ETCD_VERSION"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd.tmp" "$BIN/etcd"
}

build_kwok() {
  [[ -x "$BIN/kwok" ]] && return
  log "building kwok $KWOK_VERSION"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

build_etcd
build_kwok
build_kubernetes
echo "$BIN"
