#!/usr/bin/env python3
"""For a real cluster without cert-manager: print the webhook's TLS Secret, the Secret with the
progress-token key, and the ValidatingWebhookConfiguration with its CA bundle
(pipe into `kubectl apply -f -`)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pki import webhook_certs  # noqa: E402

from acgs_operator.crdgen import OPERATOR_NAMESPACE, WEBHOOK_SERVICE  # noqa: E402
from acgs_operator.webhookconfig import build_webhook_configuration  # noqa: E402


def main() -> int:
    svc = f"{WEBHOOK_SERVICE}.{OPERATOR_NAMESPACE}.svc"
    with tempfile.TemporaryDirectory() as tmp:
        certs = webhook_certs(Path(tmp), hosts=(svc, f"{svc}.cluster.local"))
        files = {name: (certs / name).read_text() for name in ("ca.crt", "tls.crt", "tls.key")}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "acgs-webhook-tls", "namespace": OPERATOR_NAMESPACE}, "stringData": files}
    config = build_webhook_configuration(ca_bundle=files["ca.crt"].encode(),
                                         service=(OPERATOR_NAMESPACE, WEBHOOK_SERVICE, 443))
    import secrets

    progress = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "acgs-operator-secrets", "namespace": OPERATOR_NAMESPACE},
                "stringData": {"progress-key": secrets.token_hex(32)}}
    print(yaml.safe_dump_all([secret, progress, config], sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
