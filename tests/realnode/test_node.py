"""The real node runs pods as containers: the restricted security context is enforced by runc,
`kubectl logs`/`exec` reach the kubelet, and fake GPUs make GPU-requesting pods schedulable."""

from __future__ import annotations

import pytest

from tests.conftest import Cluster, wait_until
from tests.realnode.conftest import NODE, apply, restricted_pod

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

CHECKS = """
import os
print("uid", os.getuid(), "gid", os.getgid())
try:
    open("/written-by-the-pod", "w")
except OSError as e:
    print("root write:", e.strerror)
print("caps", [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0])
"""


def test_restricted_pod_runs_as_a_container_with_a_fake_gpu(real_node: Cluster, real_namespace: str) -> None:
    pod = restricted_pod("checks", real_namespace, {"app": "checks"}, CHECKS)
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    pod["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    apply(real_node, pod)

    def finished() -> dict | None:
        p = real_node.get_json("pod", "-n", real_namespace, "checks")
        return p if p["status"].get("phase") in ("Succeeded", "Failed") else None
    done = wait_until(finished, timeout=120, interval=1, what="the pod to finish")
    assert done["spec"]["nodeName"] == NODE
    assert done["status"]["phase"] == "Succeeded"
    logs = real_node.kubectl("logs", "-n", real_namespace, "checks", check=True).stdout
    assert "uid 65532 gid 65532" in logs
    assert "root write: Read-only file system" in logs
    assert "caps 0000000000000000" in logs
