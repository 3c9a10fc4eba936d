"""An experiment for bench/admission.py, not part of the product: a lean validating-webhook
server in its own process. The same `admission.validate` as kopf's webhook handlers, served by a
bare aiohttp route per kind, without kopf's admission machinery (cause building, handler matching,
memo copies, per-request logging) and outside the operator's event loop and GIL.

    python bench/lean_webhook.py --port 9453   # settings from ACGS_* env, as the operator

Same URL paths, certificate and verdicts as the kopf-served webhook (handlers/admission.py).
Not adopted: through the apiserver it did not measurably beat kopf's (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import ssl
import time
from typing import Any

from aiohttp import web

from acgs_operator import admission
from acgs_operator.api import KINDS
from acgs_operator.config import Settings
from acgs_operator.handlers.admission import webhook_path
from acgs_operator.metrics import ADMISSION_LATENCY, ADMISSION_REQUESTS


def review_response(review: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The AdmissionReview answer to one AdmissionReview request (pure: no I/O)."""
    request = review.get("request") or {}
    kind = (request.get("kind") or {}).get("kind", "")
    operation = request.get("operation") or "UNKNOWN"
    obj, old = request.get("object") or {}, request.get("oldObject")
    started, result = time.perf_counter(), "allowed"
    answer: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    try:
        old_spec = dict(old.get("spec") or {}) if old else None
        admission.validate(kind, dict(obj.get("spec") or {}), old_spec, settings.constitutional_hash,
                           settings.image_allowlist)
    except admission.Rejected as e:
        result = "rejected"
        answer = {**answer, "allowed": False, "status": {"code": 422, "message": f"{kind} rejected: {e}"}}
    except Exception:
        result = "error"  # a bug, not a verdict: refuse (never admit unchecked); AcgsWebhookErrors pages
        answer = {**answer, "allowed": False, "status": {"code": 500, "message": f"{kind}: internal error"}}
    finally:
        ADMISSION_LATENCY.labels(kind).observe(time.perf_counter() - started)
        ADMISSION_REQUESTS.labels(kind, operation, result).inc()
    return {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"), "kind": "AdmissionReview",
            "response": answer}


def application(settings: Settings) -> web.Application:
    async def validate(request: web.Request) -> web.Response:
        try:
            review = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="body: expected an AdmissionReview JSON object")
        if not isinstance(review, dict):
            return web.Response(status=400, text="body: expected an AdmissionReview JSON object")
        return web.Response(body=json.dumps(review_response(review, settings)).encode(),
                            content_type="application/json")

    app = web.Application()
    app.add_routes([web.post(f"/{webhook_path(info)}", validate) for info in KINDS])
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the ACGS validating webhook (settings from ACGS_* env).")
    parser.add_argument("--port", type=int, help="default: ACGS_WEBHOOK_PORT")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if not (settings.webhook_cert and settings.webhook_key):
        parser.error("ACGS_WEBHOOK_CERT and ACGS_WEBHOOK_KEY are required: the apiserver calls webhooks over TLS")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.webhook_cert), str(settings.webhook_key))
    web.run_app(application(settings), host=settings.webhook_host, port=args.port or settings.webhook_port,
                ssl_context=context, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
