#!/usr/bin/env bash
# The sample pipeline on the local control plane (the operator is already running: `make demo`).
set -euo pipefail
ns="${1:-acgs-demo}"
root="$(cd "$(dirname "$0")/.." && pwd)"
k() { "$root/.venv/bin/kubectl" --kubeconfig="$root/.cluster/kubeconfig" "$@"; }

k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null
k label namespace "$ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
echo "== applying the samples (manifests/samples) into namespace $ns"
k apply -n "$ns" -k "$root/manifests/samples"
for _ in $(seq 1 40); do
  [[ -z "$(k get acgs -n "$ns" -o jsonpath='{range .items[*]}{.status.phase}{"|"}{end}' | tr '|' '\n' | grep -x '' || true)" ]] && break
  sleep 0.25
done
echo
echo "== kubectl get acgs -n $ns"
k get acgs -n "$ns"
echo
echo "A bad object is refused by the admission webhook:"
sed 's/cdd01ef066bc6cf2/0123456789abcdef/; s/name: constitutional-ai-v1/name: wrong-hash/' "$root/manifests/samples/trainingjob.yaml" | k apply -n "$ns" -f - 2>&1 | sed 's/^/  /' || true
echo
echo "The operator keeps running in the background (log: .cluster/logs/operator.log); 'make cluster-down' stops everything."
