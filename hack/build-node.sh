#!/usr/bin/env bash
# Builds what a real local node needs beside the control plane, into a cache outside the work tree:
# kubelet and kube-proxy (from the control plane's wrapper module, same version), CoreDNS (cluster
# DNS), kube-network-policies (NetworkPolicy enforcement with nftables) and a static pause binary.
# Rebuilt only when a binary is missing. Prints the binary directory.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.37.1}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
KNP_VERSION="${KNP_VERSION:-v0.8.0}"
CACHE="${ACGS_CACHE:-$HOME/.cache/acgs}"
BIN="$CACHE/bin/node-k8s-$K8S_VERSION-coredns-$COREDNS_VERSION-knp-$KNP_VERSION"

want=(kubelet kube-proxy coredns kube-network-policies pause)
missing=()
for b in "${want[@]}"; do [[ -x "$BIN/$b" ]] || missing+=("$b"); done
if [[ ${#missing[@]} -eq 0 ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN"
log() { echo "[build-node] $*" >&2; }

# kubelet and kube-proxy come from the control plane's wrapper module (written by its build).
[[ -f "$CACHE/src/kubernetes-$K8S_VERSION/go.sum" ]] || bash "$HERE/build-control-plane.sh" >/dev/null
source "$(dirname "$0")/go-env.sh"

build_node_components() {
  cd "$CACHE/src/kubernetes-$K8S_VERSION"
  local ldflags; ldflags=$(k8s_ldflags)
  for c in kubelet kube-proxy; do
    [[ -x "$BIN/$c" ]] && continue
    log "building $c $K8S_VERSION"
    go build -trimpath -ldflags "$ldflags" -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$BIN/$c.tmp" "$BIN/$c"
  done
}

build_coredns() {
  [[ -x "$BIN/coredns" ]] && return
  log "building CoreDNS $COREDNS_VERSION (the plugins the Corefile uses: hack/node/coredns_main.go)"
  local dir="$CACHE/src/coredns-$COREDNS_VERSION"
  mkdir -p "$dir"
  cp "$HERE/node/coredns_main.go" "$dir/main.go"
  printf 'module acgs.io/localcoredns\n\ngo 1.26.0\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" > "$dir/go.mod"
  (cd "$dir" && go get "github.com/coredns/coredns@$COREDNS_VERSION" >&2 && go mod tidy >&2 \
    && go build -trimpath -ldflags "-s -w" -o "$BIN/coredns.tmp" .)
  mv "$BIN/coredns.tmp" "$BIN/coredns"
}

# kube-network-policies queues each new connection's first packet to userspace. This kernel lacks
# nftables' `queue` expression (CONFIG_NFT_QUEUE) but has xtables' NFQUEUE target, so the module is
# built from a copy whose queue expressions call that target through nft_compat (knp_xtqueue.go).
build_knp() {
  [[ -x "$BIN/kube-network-policies" ]] && return
  log "building kube-network-policies $KNP_VERSION (NFQUEUE through nft_compat)"
  local src="$CACHE/src/kube-network-policies-$KNP_VERSION"
  rm -rf "$src"
  local dir; dir=$(cd "$(mktemp -d)" && go mod download -json "sigs.k8s.io/kube-network-policies@$KNP_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  cp -r "$dir" "$src" && chmod -R u+w "$src"
  cp "$HERE/node/knp_xtqueue.go" "$src/pkg/networkpolicy/acgs_xtqueue.go"
  local np="$src/pkg/networkpolicy"
  sed -i -E 's|queue := &expr.Queue\{Num: uint16\(c.config.QueueID\)\}|queue := xtQueue(uint16(c.config.QueueID), c.config.FailOpen)|; /^\t\tqueue.Flag = expr.QueueFlagBypass$/d' "$np/controller.go"
  # the `if c.config.FailOpen { }` left empty by the deletion is valid Go; gofmt keeps it.
  sed -i -E 's|&expr.Queue\{Num: uint16\(n.nfQueueID\), Flag: expr.QueueFlagBypass\}|xtQueue(uint16(n.nfQueueID), true)|' "$np/dnsagent.go"
  # It runs as a host process with a kubeconfig, not in a pod with in-cluster credentials.
  cp "$HERE/node/knp_kubeconfig.go" "$src/cmd/acgs_kubeconfig.go"
  sed -i -e 's|config, err := rest.InClusterConfig()|config, err := acgsRestConfig()|' \
    -e '/^\t"k8s.io\/client-go\/rest"$/d' "$src/cmd/main.go"
  if grep -q "expr.Queue" "$np/controller.go" "$np/dnsagent.go" || grep -q "rest.InClusterConfig()" "$src/cmd/main.go"; then
    log "patch did not apply to $src"; exit 1
  fi
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$BIN/kube-network-policies.tmp" ./cmd)
  mv "$BIN/kube-network-policies.tmp" "$BIN/kube-network-policies"
}

build_pause() {
  [[ -x "$BIN/pause" ]] && return
  log "building the static pause binary"
  gcc -Os -static -o "$BIN/pause.tmp" "$HERE/node/pause.c"
  mv "$BIN/pause.tmp" "$BIN/pause"
}

only="${1:-all}"  # one part only: pause, kube (kubelet + kube-proxy), knp, coredns
[[ $only == all || $only == pause ]] && build_pause
[[ $only == all || $only == knp ]] && build_knp
[[ $only == all || $only == kube ]] && build_node_components
[[ $only == all || $only == coredns ]] && build_coredns
echo "$BIN"
