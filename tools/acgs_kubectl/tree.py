"""What `kubectl acgs get` draws: pure functions from a namespace's objects (API dicts) to a tree
and its text, like `kubectl argo rollouts get`. No API calls here, so tests build trees from dicts.

TrainingJob → its Job → pods, and the ModelVersion it produced; ModelVersion → the acgs.io
Deployments serving or previewing it; Deployment → its colors (apps/v1 Deployments) → pods, and the
FlywheelPolicies fed by it with their candidate runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from acgs_operator.builders.deployment import LABEL_COLOR, deployment_name
from acgs_operator.builders.trainingjob import LABEL_TRAINING_JOB

COLORS = ("blue", "green")
ICONS = {"TrainingJob": "⟳", "ModelVersion": "⧉", "Deployment": "⟳", "FlywheelPolicy": "↻",
         "Job": "⊞", "ReplicaSet": "#", "Pod": "□", "Color": "◧", "Candidate": "◇"}
GOOD = {"Succeeded", "Ready", "Healthy", "Running", "Idle", "Winner", "Evaluated", "Complete"}
BAD = {"Failed", "Degraded", "Invalid", "Rejected", "Error", "CrashLoopBackOff"}


@dataclass
class Snapshot:
    """Everything `get` needs from one namespace (plain API dicts)."""

    namespace: str
    training_jobs: list[dict[str, Any]] = field(default_factory=list)
    model_versions: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    flywheel_policies: list[dict[str, Any]] = field(default_factory=list)
    apps_deployments: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


@dataclass
class Node:
    kind: str
    name: str
    status: str = ""
    info: str = ""
    created: str | None = None
    children: list[Node] = field(default_factory=list)


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def _find(objects: list[dict[str, Any]], name: str | None) -> dict[str, Any] | None:
    return next((o for o in objects if name and _name(o) == name), None)


def pod_node(pod: dict[str, Any]) -> Node:
    st = _status(pod)
    statuses = st.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    waiting = next((c["state"]["waiting"].get("reason") for c in statuses
                    if (c.get("state") or {}).get("waiting")), None)
    restarts = sum(c.get("restartCount", 0) for c in statuses)
    status = "Terminating" if pod["metadata"].get("deletionTimestamp") else waiting or st.get("phase", "Pending")
    info = f"ready:{ready}/{len(statuses) or len(_spec(pod).get('containers') or [])}"
    if restarts:
        info += f",restarts:{restarts}"
    return Node("Pod", _name(pod), status, info, pod["metadata"].get("creationTimestamp"))


def _pods(snap: Snapshot, labels: dict[str, str]) -> list[Node]:
    chosen = [p for p in snap.pods
              if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())]
    return [pod_node(p) for p in sorted(chosen, key=_name)]


def _percent(tj: dict[str, Any]) -> str:
    progress = _status(tj).get("progress") or {}
    parts = []
    if progress.get("percent") is not None:
        parts.append(f"{progress['percent']:g}%")
    if progress.get("epsilon") is not None:
        target = (_spec(tj).get("privacy") or {}).get("targetEpsilon")
        parts.append(f"ε {progress['epsilon']:g}" + (f"/{target:g}" if target is not None else ""))
    return " ".join(parts)


def training_job_node(snap: Snapshot, tj: dict[str, Any], with_version: bool = True) -> Node:
    st = _status(tj)
    node = Node("TrainingJob", _name(tj), st.get("phase", ""), _percent(tj), tj["metadata"].get("creationTimestamp"))
    job = _find(snap.jobs, st.get("jobName"))
    if job is not None:
        jst = _status(job)
        job_status = next((c["type"] for c in jst.get("conditions") or [] if c.get("status") == "True"),
                          "Suspended" if _spec(job).get("suspend") else ("Running" if jst.get("active") else ""))
        node.children.append(Node("Job", _name(job), job_status, "", job["metadata"].get("creationTimestamp"),
                                  _pods(snap, {LABEL_TRAINING_JOB: _name(tj)[:63]})))
    if with_version:
        mv = _find(snap.model_versions, st.get("modelVersion")) or next(
            (m for m in snap.model_versions
             if ((_spec(m).get("lineage") or {}).get("trainingJob")) == _name(tj)), None)
        if mv is not None:
            node.children.append(model_version_node(snap, mv, with_job=False))
    return node


def model_version_node(snap: Snapshot, mv: dict[str, Any], with_job: bool = True,
                       with_deployments: bool = True) -> Node:
    spec = _spec(mv)
    metrics = spec.get("metrics") or {}
    info = [spec.get("stage", ""), f"v{spec.get('version', '?')}"]
    if metrics.get("complianceScore") is not None:
        info.append(f"compliance:{metrics['complianceScore']:g}")
    if (spec.get("lineage") or {}).get("parentVersion"):
        info.append(f"parent:{spec['lineage']['parentVersion']}")
    node = Node("ModelVersion", _name(mv), _status(mv).get("phase", ""), " ".join(i for i in info if i),
                mv["metadata"].get("creationTimestamp"))
    if with_job:
        tj = _find(snap.training_jobs, (spec.get("lineage") or {}).get("trainingJob"))
        if tj is not None:
            node.children.append(training_job_node(snap, tj, with_version=False))
    if with_deployments:
        for dep in snap.deployments:
            st = _status(dep)
            roles = [role for role, key in (("active", "activeModelVersion"), ("preview", "previewModelVersion"))
                     if st.get(key) == _name(mv)]
            if roles:
                node.children.append(deployment_node(snap, dep, roles, with_versions=False))
    return node


def _color_node(snap: Snapshot, dep: dict[str, Any], color: str) -> Node | None:
    st, owner = _status(dep), _name(dep)
    child = _find(snap.apps_deployments, deployment_name(owner, color))
    if child is None:
        return None
    role = "active" if st.get("activeColor") == color else "preview" if st.get("previewColor") == color else ""
    version = ((child["metadata"].get("annotations") or {}).get("acgs.io/model-version")) or ""
    cst = _status(child)
    info = " ".join(x for x in (role, version, f"ready:{cst.get('readyReplicas', 0)}/"
                                f"{_spec(child).get('replicas', 0)}") if x)
    pods = [p for p in snap.pods if (p["metadata"].get("labels") or {}).get(LABEL_COLOR) == color
            and (p["metadata"].get("labels") or {}).get("acgs.io/owner-name") == owner[:63]]
    return Node("Color", f"{owner} {color}", "", info, child["metadata"].get("creationTimestamp"),
                [pod_node(p) for p in sorted(pods, key=_name)])


def deployment_node(snap: Snapshot, dep: dict[str, Any], roles: list[str] | None = None,
                    with_versions: bool = True) -> Node:
    st = _status(dep)
    held = (st.get("rollout") or {}).get("heldBack") or {}
    info = [f"role:{','.join(roles)}" if roles else "", f"active:{st.get('activeColor') or '-'}"]
    if held:
        info.append(f"held-back:{held.get('modelVersion')}({held.get('reason')})")
    node = Node("Deployment", _name(dep), st.get("phase", ""), " ".join(i for i in info if i),
                dep["metadata"].get("creationTimestamp"))
    for color in COLORS:
        if (child := _color_node(snap, dep, color)) is not None:
            node.children.append(child)
    if with_versions:
        for key in ("activeModelVersion", "previewModelVersion"):
            mv = _find(snap.model_versions, st.get(key))
            if mv is not None:
                node.children.append(model_version_node(snap, mv, with_deployments=False))
    for policy in snap.flywheel_policies:
        if _spec(policy).get("deploymentRef") == _name(dep):
            node.children.append(flywheel_node(snap, policy))
    return node


def flywheel_node(snap: Snapshot, policy: dict[str, Any]) -> Node:
    st = _status(policy)
    info = " ".join(x for x in (f"records:{st.get('recordsSeen', 0)}",
                                f"recommends:{st['recommendation']}" if st.get("recommendation") else "",
                                f"last-run:{st['lastRun']}" if st.get("lastRun") else "") if x)
    node = Node("FlywheelPolicy", _name(policy), st.get("phase", ""), info, policy["metadata"].get("creationTimestamp"))
    for cand in st.get("candidates") or []:
        keys = ("trainingJob", "modelVersion", "complianceScore", "accuracy", "costRatio")
        cinfo = " ".join(f"{k}:{cand[k]}" for k in keys if cand.get(k) is not None)
        node.children.append(Node("Candidate", cand.get("name", "?"), cand.get("state") or "", cinfo))
    return node


def roots(snap: Snapshot, kind: str | None = None, name: str | None = None) -> list[Node]:
    """The trees for `get [KIND [NAME]]`: by default every Deployment, then TrainingJobs whose
    version no Deployment serves, then ModelVersions in neither."""
    builders: dict[str, tuple[list[dict[str, Any]], Callable[[dict[str, Any]], Node]]] = {
        "TrainingJob": (snap.training_jobs, lambda o: training_job_node(snap, o)),
        "ModelVersion": (snap.model_versions, lambda o: model_version_node(snap, o)),
        "Deployment": (snap.deployments, lambda o: deployment_node(snap, o)),
        "FlywheelPolicy": (snap.flywheel_policies, lambda o: flywheel_node(snap, o)),
    }
    if kind is not None:
        objects, build = builders[kind]
        chosen = [o for o in objects if name is None or _name(o) == name]
        return [build(o) for o in sorted(chosen, key=_name)]
    out = [deployment_node(snap, d) for d in sorted(snap.deployments, key=_name)]
    shown = {n.name for tree in out for n in walk(tree) if n.kind in ("ModelVersion", "TrainingJob")}
    out += [training_job_node(snap, t) for t in sorted(snap.training_jobs, key=_name) if _name(t) not in shown]
    shown |= {n.name for tree in out for n in walk(tree) if n.kind in ("ModelVersion", "TrainingJob")}
    out += [model_version_node(snap, m) for m in sorted(snap.model_versions, key=_name) if _name(m) not in shown]
    out += [flywheel_node(snap, p) for p in sorted(snap.flywheel_policies, key=_name)
            if not _find(snap.deployments, _spec(p).get("deploymentRef"))]
    return out


def walk(node: Node) -> list[Node]:
    return [node] + [n for child in node.children for n in walk(child)]


def age(created: str | None, now: dt.datetime | None) -> str:
    """kubectl's short duration: 45s, 12m, 3h, 2d (blank without a clock: `watch` compares so)."""
    if not created or now is None:
        return ""
    try:
        seconds = int((now - dt.datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds())
    except ValueError:
        return ""
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _mark(status: str, color: bool) -> str:
    if not status:
        return ""
    symbol = "✔ " if status in GOOD else "✖ " if status in BAD else "◌ "
    if not color:
        return symbol + status
    code = "32" if status in GOOD else "31" if status in BAD else "33"
    return f"\033[{code}m{symbol}{status}\033[0m"


def render(trees: list[Node], now: dt.datetime | None, color: bool = False) -> str:
    """NAME / KIND / STATUS / AGE / INFO columns with the tree drawn in the NAME column."""
    rows: list[tuple[str, str, str, str, str]] = []

    def visit(node: Node, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else prefix + ("└──" if last else "├──")
        rows.append((f"{branch}{ICONS.get(node.kind, '·')} {node.name}", node.kind, node.status,
                     age(node.created, now), node.info))
        below = "" if top else prefix + ("   " if last else "│  ")
        for i, child in enumerate(node.children):
            visit(child, below, i == len(node.children) - 1, False)

    for tree in trees:
        visit(tree, "", True, True)
    if not rows:
        return ""
    header = ("NAME", "KIND", "STATUS", "AGE")
    cells = [(name, kind, _mark(status, False), when) for name, kind, status, when, _ in rows]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  INFO"]
    for (name, kind, status, when, info), plain in zip(rows, cells):
        shown = _mark(status, color) + " " * (widths[2] - len(plain[2]))
        row = f"{name.ljust(widths[0])}  {kind.ljust(widths[1])}  {shown}  {when.ljust(widths[3])}  {info}"
        lines.append(row.rstrip())
    return "\n".join(lines) + "\n"
