"""A TrainingJob's status is never written back from an older view of it.

The create handler reconciles from the body it was called with, while a Job event re-reads the
TrainingJob; with a Job that finishes in seconds (real containers start fast) the create handler's
write can come after the event's. An unconditional merge patch from the older view then puts a
Succeeded TrainingJob back to Pending for good (seen on the real node). `sync_status` writes on
the condition of the resourceVersion it read and decides again from a fresh read on a conflict.

    flock /tmp/acgs-cluster.lock .venv/bin/python -m pytest tests/cluster/test_status_writes.py -q
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from ..conftest import Cluster, wait_until

pytestmark = [pytest.mark.cluster]

HASH = "cdd01ef066bc6cf2"


@pytest.fixture
def kube_client(operator: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The operator's own kube module, in this process, talking to the test cluster."""
    from acgs_operator import kube
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(operator.kubeconfig))
    monkeypatch.setattr(kube, "api_client", lambda: api)
    kube.dynamic.cache_clear()
    yield kube
    kube.dynamic.cache_clear()


def test_an_older_view_never_overwrites_a_newer_status(operator: Cluster, namespace: str, kube_client: Any) -> None:
    from acgs_operator.handlers import trainingjob as handler

    kube = kube_client
    tj = {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob",
          "metadata": {"name": "raced", "namespace": namespace},
          "spec": {"constitutionalHash": HASH, "modelName": "cai", "suspend": True,  # a Job, never a pod
                   "data": {"generate": {"type": "constitutional_ai", "size": 20}}, "output": {"pvc": "artifacts"},
                   "resources": {"cpu": "1", "memory": "1Gi", "gpus": 0}}}
    operator.kubectl("apply", "-f", "-", input=json.dumps(tj), check=True)

    def read() -> dict[str, Any]:
        found = kube.get("acgs.io/v1alpha1", "TrainingJob", namespace, "raced")
        assert found is not None
        return found

    try:
        wait_until(lambda: (read().get("status") or {}).get("jobName"), 60, "the operator to create the Job")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status: {json.dumps(read().get('status'))}") from None
    older = read()
    # Another writer moves the status on (as a Job event's write would).
    newer_message = "written by a newer view"
    kube.patch_status("acgs.io/v1alpha1", "TrainingJob", namespace, "raced", {"message": newer_message})

    # A conditional write from the older view is refused by the apiserver...
    with pytest.raises(kube.ApiException) as refused:
        kube.patch_status_changes(older, {"message": "written by an older view"}, conditional=True)
    assert kube.is_conflict(refused.value)
    assert read()["status"]["message"] == newer_message
    # ...and sync_status from the older view decides again from a fresh read instead of failing.
    handler.sync_status(older)
    assert read()["status"]["phase"] == older["status"]["phase"]
