"""Property-based fuzzing of the acgs.io API through a real `kubectl apply` (hypothesis).

For each kind, FUZZ_EXAMPLES (default 1,000) specs are generated from the kind's sample
(manifests/samples) with 0-3 mutations each: a field set to a value of another type, to a boundary
number, to junk text, removed, or an unknown field added. All of them go through ONE multi-document
`kubectl apply` per kind (seconds, not minutes), and then each object's outcome is checked:

- admitted, or refused with a message that names a spec field - never an internal error;
- the operator is alive afterwards (same process);
- every admitted object reconciles to a status.phase, and no status holds a stack trace.

The generation is derandomized (same examples each run), so a failure reproduces.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..conftest import Cluster, localcluster, wait_until
from .conftest import apply_all, samples

pytestmark = [pytest.mark.cluster, pytest.mark.chaos, pytest.mark.slow]  # ~1 min per kind
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
PLURALS = {"TrainingJob": "trainingjobs", "ModelVersion": "modelversions", "Deployment": "deployments",
           "FlywheelPolicy": "flywheelpolicies"}
PREFIX = {"TrainingJob": "tj", "ModelVersion": "mv", "Deployment": "dep", "FlywheelPolicy": "fw"}

JUNK = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.sampled_from([0, -1, 1, 2, 100, 1000, 1001, 65535, 65536, 2**31, 0.5, -0.0, 1e-9, 1e9]),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
    st.sampled_from(["", " ", "0", "-1", "1Gi", "abc", "cdd01ef066bc6cf2", "sha256:", "../x", "pvc://",
                     "hf://a/b", "builtin:tiny-llama", "A" * 300]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=2),
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2),
)


def leaf_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into `value` (dict keys and list indexes), inner nodes included."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += leaf_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += leaf_paths(child, (*prefix, index))
    return out


def mutate(spec: dict[str, Any], path: tuple, action: str, junk: Any) -> None:
    parent: Any = spec
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "remove" and isinstance(parent, dict):
        parent.pop(last, None)
    elif action == "unknown" and isinstance(parent, dict):
        parent[f"fuzz{abs(hash(str(junk))) % 100}"] = junk
    else:
        parent[last] = junk


def spec_strategy(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    paths = leaf_paths(base)
    mutation = st.tuples(st.sampled_from(paths), st.sampled_from(["set", "set", "set", "remove", "unknown"]), JUNK)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        spec = copy.deepcopy(base)
        for path, action, junk in draw(st.lists(mutation, max_size=3)):
            try:
                mutate(spec, path, action, junk)
            except (KeyError, IndexError, TypeError):
                pass  # an earlier mutation replaced a parent of this path
        return spec

    return build()


def generate(kind: str, count: int) -> list[dict[str, Any]]:
    """`count` distinct specs for `kind`, drawn by hypothesis (derandomized: the same ones each run)."""
    base = samples()[kind]["spec"]
    drawn: list[dict[str, Any]] = []

    @settings(max_examples=2 * count, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(spec_strategy(base))
    def collect(spec: dict[str, Any]) -> None:
        if len(seen) < count and json.dumps(spec, sort_keys=True) not in seen:
            seen.add(json.dumps(spec, sort_keys=True))
            drawn.append(spec)

    seen: set[str] = set()
    collect()
    assert len(drawn) == count, f"only {len(drawn)} distinct {kind} specs generated"
    return drawn


APPLIED = re.compile(r"^\S+\.acgs\.io/(\S+) (created|configured|unchanged)$", re.M)
ERROR = re.compile(r"^(Error from server.*|The \S+ \"\S+\" is invalid.*|error.*)$", re.M)
FIELD = re.compile(r"\bspec(\.[A-Za-z]|\b)|\b(metadata\.name|apiVersion)\b")


@pytest.fixture
def fuzz_namespace(operator: Cluster) -> Any:
    name = f"fuzz-{os.urandom(3).hex()}"
    operator.kubectl("create", "namespace", name, check=True)
    yield name
    operator.kubectl("delete", "namespace", name, "--wait=false")


@pytest.mark.parametrize("kind", list(PLURALS))
def test_generated_specs_are_admitted_or_refused_by_field_and_admitted_ones_reconcile(
        operator: Cluster, fuzz_namespace: str, kind: str) -> None:
    cluster, plural = operator, PLURALS[kind]
    pid = localcluster.pid_of("operator")
    base = samples()[kind]
    names = [f"fz-{PREFIX[kind]}-{i}" for i in range(EXAMPLES)]
    objects = [{"apiVersion": base["apiVersion"], "kind": kind, "metadata": {"name": n, "namespace": fuzz_namespace},
                "spec": spec} for n, spec in zip(names, generate(kind, EXAMPLES), strict=True)]
    out = apply_all(cluster, objects, timeout=600)
    admitted = {m[0] for m in APPLIED.findall(out.stdout)}
    refused = [n for n in names if n not in admitted]
    errors = ERROR.findall(out.stderr)
    print(f"\n{kind}: {len(objects)} generated, {len(admitted)} admitted, {len(refused)} refused")
    assert len(errors) == len(refused), (len(errors), len(refused), out.stderr[-3000:])
    assert not [e for e in errors if "nternal error" in e or "InternalError" in e], out.stderr[-3000:]
    unnamed = [e for e in errors if not FIELD.search(e)]
    assert not unnamed, unnamed[:5]
    assert admitted, "no generated spec was admitted: the generator explores nothing valid"
    assert localcluster.pid_of("operator") == pid  # alive, never restarted

    def statuses() -> dict[str, dict[str, Any]]:
        items = cluster.get_json(f"{plural}.acgs.io", "-n", fuzz_namespace)["items"]
        return {o["metadata"]["name"]: o.get("status") or {} for o in items}

    def all_have_a_phase() -> dict[str, dict[str, Any]] | None:
        found = statuses()
        return found if all(s.get("phase") for s in found.values()) and len(found) == len(admitted) else None

    found = wait_until(all_have_a_phase, 300, f"every admitted {kind} to reach a phase", interval=2)
    assert not [n for n, s in found.items() if "Traceback" in json.dumps(s)]
    phases: dict[str, int] = {}
    for status in found.values():
        phases[status["phase"]] = phases.get(status["phase"], 0) + 1
    print(f"{kind}: phases of the admitted ones {phases}")
    assert localcluster.pid_of("operator") == pid
