#!/usr/bin/env bash
# The sample pipeline on the local control plane (the operator already runs: `make demo`):
# train with DP-SGD → a verified ModelVersion → promote it → blue-green serving → a prediction.
set -euo pipefail
ns="${1:-acgs-demo}"
root="$(cd "$(dirname "$0")/.." && pwd)"
# `make demo REAL_NODE=1` runs it on the real-node cluster (ACGS_CLUSTER_DIR=.cluster-real).
state="${ACGS_CLUSTER_DIR:-$root/.cluster}"
k() { "$root/.venv/bin/kubectl" --kubeconfig="$state/kubeconfig" "$@"; }
say() { printf '\n== %s\n' "$*"; }
jp() { k get -n "$ns" "$1" -o "jsonpath=$2" 2>/dev/null || true; }
wait_for() {  # wait_for <what> <seconds> <command...>: poll until the command prints something
  local what="$1" limit="$2"; shift 2
  for _ in $(seq 1 $((limit * 2))); do
    [[ -n "$("$@")" ]] && return 0
    sleep 0.5
  done
  echo "timed out after ${limit}s waiting for $what" >&2
  k get acgs -n "$ns" >&2 || true
  return 1
}

k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null
k label namespace "$ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null

say "kubectl apply -k hack/demo   (manifests/samples, placed on the local runner node)"
k apply -n "$ns" -k "$root/hack/demo"

say "training: LoRA + DP-SGD (ε ≤ 8) on a tiny base pre-trained on public data; progress comes from the trainer itself"
last=""
deadline=$((SECONDS + 1800))  # a loaded 2-core machine trains the sample in ~10 min
while (( SECONDS < deadline )); do
  phase="$(jp tj/constitutional-ai-v1 '{.status.phase}')"
  line="$(k get tj -n "$ns" constitutional-ai-v1 --no-headers 2>/dev/null || true)"
  [[ "$line" != "$last" ]] && { echo "  $line"; last="$line"; }
  [[ "$phase" == Succeeded || "$phase" == Failed ]] && break
  sleep 0.5
done
if [[ "$phase" != Succeeded ]]; then
  k describe tj -n "$ns" constitutional-ai-v1 | tail -20
  exit 1
fi
mv="$(jp tj/constitutional-ai-v1 '{.status.modelVersion}')"

say "ModelVersion $mv: its artifact's files and digest are verified before it is Ready"
wait_for "ModelVersion $mv Ready" 120 bash -c "[[ \$('$root/.venv/bin/kubectl' --kubeconfig='$state/kubeconfig' get mv -n '$ns' '$mv' -o jsonpath='{.status.phase}') == Ready ]] && echo ok"
k get mv -n "$ns" -o wide

say "promote $mv to production; the Deployment follows the stage (nobody edits the Git-owned spec)"
k patch mv -n "$ns" "$mv" --type merge -p '{"spec":{"stage":"production"}}'
# kstatus: the stage patch makes generation 2, and the operator's conditions follow it.
k wait -n "$ns" --for=condition=Ready "mv/$mv" --timeout=30s
dep() { jp mdeploy/constitutional-ai "$1"; }
wait_for "a promotion decision" 120 bash -c "'$root/.venv/bin/kubectl' --kubeconfig='$state/kubeconfig' get mdeploy -n '$ns' constitutional-ai -o jsonpath='{.status.conditions[?(@.type==\"PromotionBlocked\")].status}{.status.activeColor}' | grep -E 'True|blue|green'"
if [[ -z "$(dep '{.status.activeColor}')" ]]; then
  # The default gates (compliance ≥ 0.95) are never lowered: a blocked model is a failed demo.
  echo "  blocked by the promotion gates: $(dep '{.status.message}')" >&2
  exit 1
fi
k wait -n "$ns" --for=condition=Ready mdeploy/constitutional-ai --timeout=180s
k get mdeploy -n "$ns" -o wide

say "predictions from the active color, with the principles they rest on (no kube-proxy here: the client uses the active Service's EndpointSlice)"
ip="$(k get endpointslices -n "$ns" -l kubernetes.io/service-name=constitutional-ai -o jsonpath='{.items[0].endpoints[0].addresses[0]}')"
port="$(k get endpointslices -n "$ns" -l kubernetes.io/service-name=constitutional-ai -o jsonpath='{.items[0].ports[0].port}')"
predict() {  # predict <scenario JSON>: the served model's answer, beside what the rules derive
  local body="{\"scenario\": $1, \"constitutional_hash\": \"cdd01ef066bc6cf2\"}"
  curl -sS -X POST "http://$ip:$port/constitutional-ai/predict" -H 'Content-Type: application/json' \
    -d "$body" | "$root/.venv/bin/python" -c '
import json, sys
from acgs_trainer.constitution import load_constitution
reply, scenario = json.load(sys.stdin), json.loads(sys.argv[1])
rules = load_constitution().evaluate(scenario)
text = reply.get("generated_text", reply)
principles, fired = " ".join(rules.principles) or "none", ", ".join(rules.rules) or "no rule fires"
print("  model: %-26s rules: %s %s  (%s)" % (text, rules.decision, principles, fired))' "$1"
}
common='"action": "data_access_request", "audit_logging": true, "human_oversight": true, "explanation_provided": true'
predict "{$common, \"actor_role\": \"employee\", \"data_sensitivity\": \"internal\", \"consent\": true, \"risk_level\": \"low\", \"affects_protected_group\": false, \"bias_tested\": true}"
predict "{$common, \"actor_role\": \"contractor\", \"data_sensitivity\": \"confidential\", \"consent\": true, \"risk_level\": \"medium\", \"affects_protected_group\": false, \"bias_tested\": true}"
predict "{$common, \"actor_role\": \"external\", \"data_sensitivity\": \"restricted\", \"consent\": false, \"risk_level\": \"high\", \"affects_protected_group\": true, \"bias_tested\": false}"
echo "  one full reply:"
curl -sS -X POST "http://$ip:$port/constitutional-ai/predict" -H 'Content-Type: application/json' -d '{
  "scenario": {"action": "data_access_request", "actor_role": "contractor", "data_sensitivity": "confidential",
               "consent": false, "risk_level": "high", "audit_logging": true, "human_oversight": true,
               "explanation_provided": true, "affects_protected_group": false, "bias_tested": true},
  "constitutional_hash": "cdd01ef066bc6cf2"}'
echo

say "the same endpoint with the seed document's own request body (free text reaches the model)"
curl -sS -X POST "http://$ip:$port/constitutional-ai/predict" -H 'Content-Type: application/json' -d '{
  "scenario": "ethical_dilemma", "context": {"user_role": "employee", "data_type": "personal"},
  "user_request": "Access to customer data for analysis",
  "constitutional_principles": ["privacy", "transparency", "accountability"],
  "constitutional_hash": "cdd01ef066bc6cf2"}'
echo

if [[ "${ACGS_REAL_NODE:-}" == 1 ]]; then
  say "real node: the active Service by name, from pods (CoreDNS, kube-proxy, the Deployment's NetworkPolicy)"
  client() {  # client <name>: a restricted pod from the base image, labelled app=<name>, sends one prediction
    local code="import json, urllib.request as u
body = json.dumps({'scenario': 'ethical_dilemma', 'user_request': 'Access to customer data for analysis',
                   'constitutional_hash': 'cdd01ef066bc6cf2'}).encode()
try:
    r = u.urlopen(u.Request('http://constitutional-ai.$ns.svc/constitutional-ai/predict', body,
                            {'Content-Type': 'application/json'}), timeout=5)
    print('answered', r.status, json.load(r).get('generated_text'))
except Exception as e:
    print('refused:', type(e).__name__, e)"
    "$root/.venv/bin/python" -c '
import json, sys
name, image, code = sys.argv[1:]
print(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
  "spec": {"nodeSelector": {"acgs.io/real-node": "true"}, "restartPolicy": "Never",
           "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                               "seccompProfile": {"type": "RuntimeDefault"}},
           "containers": [{"name": "client", "image": image, "imagePullPolicy": "Never",
                           "command": ["python3", "-c", code],
                           "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                               "capabilities": {"drop": ["ALL"]}}}]}}))' \
      "$1" "${ACGS_BASE_IMAGE:-localhost/acgs-base:bookworm}" "$code" | k apply -n "$ns" -f - >/dev/null
  }
  k delete pod -n "$ns" policy-gateway curious --ignore-not-found >/dev/null
  client policy-gateway   # listed in the sample Deployment's network.allowedClients
  client curious          # not listed
  for pod in policy-gateway curious; do
    wait_for "pod $pod to finish" 120 bash -c "'$root/.venv/bin/kubectl' --kubeconfig='$state/kubeconfig' get pod -n '$ns' $pod -o jsonpath='{.status.phase}' | grep -E 'Succeeded|Failed'"
    echo "  $pod: $(k logs -n "$ns" "$pod")"
  done
fi

say "one flywheel turn: the servers log what they are asked; the FlywheelPolicy evaluates cheaper candidates on it"
"$root/.venv/bin/python" - "$ip" "$port" <<'PY'
import json, subprocess, sys, tempfile, urllib.request
ip, port = sys.argv[1], sys.argv[2]
with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:  # distinct scenarios from the trainer's generator
    subprocess.run([sys.executable, "-m", "acgs_trainer.data_cli", "generate", "--type", "constitutional_ai",
                    "--size", "120", "--seed", "5", "--out", out.name], check=True, capture_output=True)
    scenarios = {json.dumps(json.loads(l)["input"]["scenario"], sort_keys=True) for l in open(out.name)}
sent = 0
for scenario in sorted(scenarios)[:40]:
    body = json.dumps({"scenario": json.loads(scenario), "constitutional_hash": "cdd01ef066bc6cf2"}).encode()
    req = urllib.request.Request(f"http://{ip}:{port}/constitutional-ai/predict", data=body,
                                 headers={"Content-Type": "application/json"})
    sent += urllib.request.urlopen(req, timeout=30).status == 200
print(f"  sent {sent} requests (each logged as a hash-stamped JSONL record)")
PY
fwp() { jp fwp/constitutional-ai "$1"; }
wait_for "the flywheel run to be decided" 900 bash -c "'$root/.venv/bin/kubectl' --kubeconfig='$state/kubeconfig' get fwp -n '$ns' constitutional-ai -o jsonpath='{.status.lastRunResult.phase}'"
k get fwp -n "$ns" -o wide
"$root/.venv/bin/python" - "$(k get fwp -n "$ns" constitutional-ai -o json)" <<'PY'
import json, sys
s = json.loads(sys.argv[1])["status"]
run = s["lastRunResult"]
print(f"  run {run['id']}: {run['phase']}: {run.get('message', '')}")
print(f"  records: {s.get('recordsUsable')} usable, excluded {s.get('recordsExcluded')}; production's live "
      f"compliance (agreement with the judge): {s.get('liveCompliance')}; privacy budget: {s.get('budget')}")
row = "  %-11s %-10s %-9s %8s %10s %9s %6s  %s"
print(row % ("candidate", "kind", "state", "accuracy", "compliance", "latency", "cost", "why"))
for c in s["candidates"]:
    def f(key, fmt):
        return (fmt % c[key]) if c.get(key) is not None else "-"
    print(row % (c["name"], c["kind"], c["state"], f("accuracy", "%.3f"), f("complianceScore", "%.3f"),
                 f("latencyMs", "%.1fms"), f("costRatio", "%.2f"), "; ".join(c["reasons"])))
PY
if [[ "$(fwp '{.status.lastRunResult.phase}')" != Succeeded ]]; then
  exit 1
fi

say "kubectl get acgs -n $ns"
k get acgs -n "$ns"

say "a bad object is refused by the admission webhook"
sed 's/cdd01ef066bc6cf2/0123456789abcdef/; s/name: constitutional-ai-v1/name: wrong-hash/' \
  "$root/manifests/samples/trainingjob.yaml" | k apply -n "$ns" -f - 2>&1 | sed 's/^/  /' || true

echo
echo "Everything keeps running: logs in $state/logs/ (operator.log, pods/); 'make cluster-down' (REAL_NODE=1 as for the demo) stops it all."
