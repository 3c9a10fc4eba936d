"""The product's own images as real containers on the real node, under the restricted profile.
Needs the images imported into the node's containerd: `make images`, then `make test-realnode`
with ACGS_NODE_IMAGES naming them (they are 5.6 GB each, so they are not imported by default)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Cluster, wait_until
from tests.realnode.conftest import NODE, apply, restricted_pod

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]
TRAINER = "ghcr.io/acgs/trainer:0.1.0"


def on_node(cluster: Cluster, image: str) -> None:
    names = {n for i in cluster.get_json("node", NODE)["status"].get("images", []) for n in i.get("names", [])}
    if not any(n.endswith(image) for n in names):
        pytest.skip(f"{image} is not in the node's containerd: `make images`, then "
                    f"ACGS_NODE_IMAGES='ghcr.io/acgs/operator:0.1.0 {image}' make test-realnode")


def test_trainer_image_trains_in_a_restricted_pod(real_node: Cluster, real_namespace: str) -> None:
    on_node(real_node, TRAINER)
    pod = restricted_pod("trainer", real_namespace, {"app": "trainer"}, "", image=TRAINER)
    container = pod["spec"]["containers"][0]
    del container["command"]  # the image's own entrypoint, acgs-train
    container["args"] = ["--data", "generated:constitutional_ai:40", "--output", "/output", "--no-dp",
                         "--max-steps", "4", "--batch-size", "8", "--eval-max-examples", "8",
                         "--checkpoint-every", "0"]
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "output", "mountPath": "/output"}]
    pod["spec"]["volumes"] = [{"name": "tmp", "emptyDir": {}}, {"name": "output", "emptyDir": {}}]
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["securityContext"]["fsGroup"] = 65532
    apply(real_node, pod)

    def finished() -> dict | None:
        p = real_node.get_json("pod", "-n", real_namespace, "trainer")
        return p if p["status"].get("phase") in ("Succeeded", "Failed") else None
    done = wait_until(finished, timeout=600, interval=2, what="the trainer pod to finish")
    logs = real_node.kubectl("logs", "-n", real_namespace, "trainer").stdout
    assert done["status"]["phase"] == "Succeeded", logs[-3000:]
    state = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 0
    # The trainer's result reaches Kubernetes through the termination log, as in a cluster.
    result = json.loads(state.get("message") or "{}")
    assert result.get("phase") == "Succeeded" and result.get("steps") == 4, (state, logs[-2000:])
    assert result.get("epsilon") is None  # --no-dp: no privacy spend claimed
