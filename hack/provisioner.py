#!/usr/bin/env python3
"""A dynamic volume provisioner for the local control plane.

There is no storage driver here, so a PersistentVolumeClaim would stay Pending and its pods would
never be scheduled. This watches claims of the default StorageClass `acgs-local` and creates, for
each, a hostPath PersistentVolume pre-bound to it, backed by the directory the pod runner mounts
(`.cluster/volumes/pvc/<namespace>/<claim>/`, owned by UID/GID 65532 so the real node's restricted
pods can write it). kube-controller-manager's PV controller does the
binding, exactly as with a real provisioner. Reclaim policy Delete: the PV goes with its claim.

    python hack/provisioner.py --kubeconfig .cluster/kubeconfig [--state-dir .cluster]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

STORAGE_CLASS = "acgs-local"
PROVISIONER = "acgs.io/local-hostpath"
# The product's restricted pods run as UID/GID 65532 (builders/common.py). A real kubelet mounts a
# hostPath as it is (no fsGroup ownership change for hostPath), and creates a subPath directory
# with the volume root's mode and, through setgid, its group: so the root is 65532's, mode 2775.
POD_UID = POD_GID = 65532
log = logging.getLogger("provisioner")


def storage_class() -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS,
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}


def volume_for(pvc: client.V1PersistentVolumeClaim, state_dir: Path) -> client.V1PersistentVolume:
    ns, name = str(pvc.metadata.namespace), str(pvc.metadata.name)
    path = state_dir / "volumes" / "pvc" / ns / name
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # only root can give the directory away (no kubelet runs otherwise)
        os.chown(path, POD_UID, POD_GID)
    path.chmod(0o2775)
    size = (pvc.spec.resources.requests or {}).get("storage", "1Gi") if pvc.spec.resources else "1Gi"
    return client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=f"pvc-{pvc.metadata.uid}",
                                     annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER}),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": size}, access_modes=pvc.spec.access_modes or ["ReadWriteOnce"],
            persistent_volume_reclaim_policy="Delete", storage_class_name=STORAGE_CLASS,
            volume_mode=pvc.spec.volume_mode or "Filesystem",
            host_path=client.V1HostPathVolumeSource(path=str(path), type="DirectoryOrCreate"),
            claim_ref=client.V1ObjectReference(kind="PersistentVolumeClaim", namespace=ns, name=name,
                                               uid=pvc.metadata.uid, api_version="v1")))


def wants_volume(pvc: client.V1PersistentVolumeClaim) -> bool:
    return (pvc.status.phase == "Pending" and not pvc.spec.volume_name
            and pvc.spec.storage_class_name in (None, STORAGE_CLASS) and not pvc.metadata.deletion_timestamp)


def provision(api: client.CoreV1Api, pvc: client.V1PersistentVolumeClaim, state_dir: Path) -> None:
    try:
        api.create_persistent_volume(volume_for(pvc, state_dir))
        log.info("provisioned %s/%s", pvc.metadata.namespace, pvc.metadata.name)
    except ApiException as e:
        if e.status != 409:
            log.warning("cannot provision %s/%s: %s", pvc.metadata.namespace, pvc.metadata.name, e.reason)


def release(api: client.CoreV1Api, pvc: client.V1PersistentVolumeClaim) -> None:
    """Reclaim policy Delete: the volume goes with its claim (the data stays on disk for inspection)."""
    try:
        api.delete_persistent_volume(f"pvc-{pvc.metadata.uid}")
    except ApiException as e:
        if e.status != 404:
            log.warning("cannot delete the volume of %s/%s: %s", pvc.metadata.namespace, pvc.metadata.name, e.reason)


def run(api: client.CoreV1Api, state_dir: Path) -> None:
    try:
        client.StorageV1Api().create_storage_class(storage_class())  # type: ignore[arg-type]  # a dict works
    except ApiException as e:
        if e.status != 409:
            raise
    while True:
        try:
            claims = api.list_persistent_volume_claim_for_all_namespaces()
            for pvc in claims.items:
                if wants_volume(pvc):
                    provision(api, pvc, state_dir)
            for event in watch.Watch().stream(api.list_persistent_volume_claim_for_all_namespaces,
                                              resource_version=claims.metadata.resource_version,
                                              timeout_seconds=300):
                pvc = event["object"]
                if event["type"] in ("ADDED", "MODIFIED") and wants_volume(pvc):
                    provision(api, pvc, state_dir)
                elif event["type"] == "DELETED":
                    release(api, pvc)
        except ApiException as e:
            if e.status != 410:
                log.warning("watch failed (%s); retrying", e.reason)
                time.sleep(1)
        except Exception as e:  # the apiserver going away must not kill the provisioner
            log.warning("watch error: %s; retrying", e)
            time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", type=Path, default=Path(".cluster"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config.load_kube_config(args.kubeconfig)
    run(client.CoreV1Api(), args.state_dir.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
