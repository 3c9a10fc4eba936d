"""`kubectl acgs` through a real kubectl (plugin discovery on PATH) on real objects: a TrainingJob
that trains on the pod runner (its trainer's /metrics scraped on the pod IP while it runs), the
ModelVersion it produced, verified and promoted to production, and the Deployment serving it.

    flock /tmp/acgs-cluster.lock .venv/bin/python -m pytest tests/cluster/test_kubectl_plugin.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..conftest import KUBECTL, ROOT, Cluster
from .conftest import apply, pvc, wait_until
from .test_deployment_e2e import deployment
from .test_trainingjob_e2e import training_job

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.ml]

TJ, DEP = "cai", "web"
ROW = re.compile(r"^[│├└─ ]*\S (?P<name>.+?)\s{2,}(?P<kind>\S+)\s+(?P<rest>.*)$")


class Pipeline:
    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.scraped: dict[str, float] = {}
        # kubectl finds the plugin (and its completion helper) on PATH, like an installed one.
        self.env = {**cluster.env, "PATH": f"{ROOT / '.venv/bin'}{os.pathsep}{os.environ['PATH']}"}

    def acgs(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, "acgs", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def get(self, *args: str) -> dict[str, Any]:
        return self.cluster.get_json(*args, "-n", self.namespace)

    def scrape_trainer(self, stop: threading.Event) -> None:
        """Scrape the trainer pod's metrics port on its IP until the run ends; keep the last scrape."""
        while not stop.is_set():
            try:
                pods = self.get("pods", "-l", f"acgs.io/training-job={TJ}")["items"]
            except AssertionError:  # a kubectl hiccup: look again
                pods = []
            for pod in pods:
                ip = (pod.get("status") or {}).get("podIP")
                if not ip:
                    continue
                try:
                    with urllib.request.urlopen(f"http://{ip}:9090/metrics", timeout=1) as resp:
                        text = resp.read().decode()
                except OSError:
                    continue
                self.scraped = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                                if line.startswith("acgs_trainer_") and " " in line}
            time.sleep(0.2)


@pytest.fixture(scope="module")
def pipeline(cluster: Cluster, operator: Cluster, podrunner: Path) -> Iterator[Pipeline]:
    namespace = f"t-kp-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace, check=True)
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", check=True)
    pvc(cluster, namespace, "artifacts")
    p = Pipeline(cluster, namespace)
    stop = threading.Event()
    scraper = threading.Thread(target=p.scrape_trainer, args=(stop,), daemon=True)
    scraper.start()
    cluster.kubectl("apply", "-f", "-", input=training_job(namespace, TJ), check=True)
    done = wait_until(lambda: (t := p.get("tj", TJ)).get("status", {}).get("phase") in ("Succeeded", "Failed") and t,
                      400, "the TrainingJob to finish")
    stop.set()
    scraper.join(5)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    mv = done["status"]["modelVersion"]
    verified = wait_until(lambda: (m := p.get("mv", mv)).get("status", {}).get("phase") in ("Ready", "Invalid") and m,
                          180, "the ModelVersion verified")
    assert verified["status"]["phase"] == "Ready", f"ModelVersion {mv}: {json.dumps(verified['status'])[-1500:]}"
    cluster.kubectl("patch", "mv", mv, "-n", namespace, "--type=merge", "-p",
                    '{"spec":{"stage":"production"}}', check=True)
    body = deployment(DEP)
    body["spec"]["model"]["selector"]["modelName"] = "constitutional-ai"
    apply(cluster, {**body, "metadata": {"name": DEP, "namespace": namespace}})
    try:
        wait_until(lambda: p.get("deployments.acgs.io", DEP).get("status", {}).get("phase") == "Healthy", 300,
                   "the Deployment to serve the version")
    except AssertionError as error:
        status = p.get("deployments.acgs.io", DEP).get("status", {})
        raise AssertionError(f"{error}; status: {json.dumps(status)[-2000:]}") from None
    yield p
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_trainer_metrics_are_served_on_the_pod_ip_while_it_trains(pipeline: Pipeline) -> None:
    assert pipeline.scraped, "no scrape of the trainer's metrics port succeeded while it ran"
    assert pipeline.scraped["acgs_trainer_epsilon_target"] == 8
    assert pipeline.scraped["acgs_trainer_total_steps"] == 30
    assert 0 < pipeline.scraped["acgs_trainer_epsilon_spent"] <= 8
    policy = pipeline.get("networkpolicy", f"{TJ}-train")["spec"]
    assert {"protocol": "TCP", "port": 9090} in policy["ingress"][0]["ports"]


def rows(text: str) -> dict[tuple[str, str], str]:
    """(kind, name) -> the rest of its row (status, age, info) of a `kubectl acgs get` tree."""
    found = {}
    for line in text.splitlines()[1:]:
        match = ROW.match(line)
        assert match, f"not a tree row: {line!r}"
        found[(match["kind"], match["name"])] = match["rest"]
    return found


def test_get_deployment_draws_colors_pods_version_and_its_training_job(pipeline: Pipeline) -> None:
    proc = pipeline.acgs("get", "deployment", DEP, "-n", pipeline.namespace)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n", 1)[0].split() == ["NAME", "KIND", "STATUS", "AGE", "INFO"]
    shown = rows(proc.stdout)
    mv = pipeline.get("tj", TJ)["status"]["modelVersion"]
    assert "✔ Healthy" in shown[("Deployment", DEP)]
    color = shown[("Color", f"{DEP} blue")]
    assert "active" in color and mv in color and "ready:1/1" in color
    pods = [rest for (kind, name), rest in shown.items() if kind == "Pod" and name.startswith(f"{DEP}-blue-")]
    assert pods and "✔ Running" in pods[0]
    assert "✔ Ready" in shown[("ModelVersion", mv)] and "production" in shown[("ModelVersion", mv)]
    trained = shown[("TrainingJob", TJ)]
    assert "✔ Succeeded" in trained and "100%" in trained and "ε " in trained
    assert ("Job", f"{TJ}-train") in shown  # the TrainingJob's batch Job
    print(proc.stdout)  # the README shows a run of this


def test_get_training_job_leads_to_where_its_version_is_served(pipeline: Pipeline) -> None:
    proc = pipeline.acgs("get", "tj", TJ, "-n", pipeline.namespace)
    assert proc.returncode == 0, proc.stderr
    kinds = [kind for kind, _ in rows(proc.stdout)]
    assert kinds[0] == "TrainingJob" and {"Job", "ModelVersion", "Deployment", "Color", "Pod"} <= set(kinds)
    missing = pipeline.acgs("get", "mdeploy", "nope", "-n", pipeline.namespace)
    assert missing.returncode == 1 and 'deployments.acgs.io "nope" not found' in missing.stderr


@pytest.mark.parametrize("command,event", [("promote", "NothingToPromote"), ("abort", "NothingToAbort"),
                                           ("undo", "NothingToUndo"), ("retry", None)])
def test_rollout_commands_reach_the_operator(pipeline: Pipeline, command: str, event: str | None) -> None:
    proc = pipeline.acgs(command, f"deployment/{DEP}", "-n", pipeline.namespace, "--wait", "--timeout", "30s")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"deployment.acgs.io/{DEP} {command} requested")
    annotations = pipeline.get("deployments.acgs.io", DEP)["metadata"].get("annotations") or {}
    assert f"acgs.io/{command}" not in annotations  # the operator took it
    if event:
        events = pipeline.get("events", "--field-selector", f"reason={event}")["items"]
        assert any(e["involvedObject"]["name"] == DEP for e in events), f"no {event} event"
    assert pipeline.get("deployments.acgs.io", DEP)["status"]["phase"] == "Healthy"  # nothing to do: still serving


def test_watch_shows_a_retrained_job_appear(pipeline: Pipeline) -> None:
    watch = subprocess.Popen([KUBECTL, "acgs", "watch", "trainingjobs", "-n", pipeline.namespace, "--timeout", "40s",
                              "--interval", "0.5s"], env=pipeline.env, stdout=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()
        assert first.startswith("NAME"), first
        retrain = pipeline.acgs("retrain", TJ, "--name", "cai-again", "-n", pipeline.namespace)
        assert retrain.returncode == 0 and retrain.stdout.strip() == "trainingjob.acgs.io/cai-again created", \
            retrain.stderr
        seen = ""
        deadline = time.monotonic() + 30
        while "cai-again" not in seen and time.monotonic() < deadline:
            seen += watch.stdout.readline()
        assert "cai-again" in seen, seen
    finally:
        watch.kill()
        watch.wait()
    again = pipeline.get("tj", "cai-again")
    assert again["spec"] == pipeline.get("tj", TJ)["spec"]
    assert again["metadata"]["annotations"]["acgs.io/retrained-from"] == TJ
    pipeline.cluster.kubectl("delete", "tj", "cai-again", "-n", pipeline.namespace, "--wait=false")


def test_kubectl_completes_the_plugin_and_lists_it(pipeline: Pipeline) -> None:
    run = lambda *a: subprocess.run([KUBECTL, *a], env=pipeline.env, capture_output=True, text=True, timeout=60)  # noqa: E731
    names = run("__complete", "acgs", "promote", "-n", pipeline.namespace, "")
    assert names.returncode == 0, names.stderr
    assert DEP in names.stdout.split() and names.stdout.rstrip().endswith(":4")
    commands = run("__complete", "acgs", "re")
    assert {line.split("\t")[0] for line in commands.stdout.splitlines()} >= {"retry", "retrain"}
    assert "kubectl-acgs" in run("plugin", "list").stdout
    helped = run("acgs", "get", "--help")
    assert "Usage:\n  kubectl acgs get" in helped.stdout
    script = run("acgs", "completion", "bash").stdout
    assert "complete -o default -F _kubectl_acgs kubectl-acgs" in script


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """Headless Chromium driven over the DevTools protocol (a websocket; aiohttp is the client)."""

    def __init__(self, profile: Path) -> None:
        import shutil as sh

        exe = sh.which("chromium") or sh.which("chromium-browser")
        if exe is None:
            pytest.skip("Debian's chromium is not installed: run `make browser` (.ci/run does)")
        self.port = _free_port()
        self.proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      f"--remote-debugging-port={self.port}", f"--user-data-dir={profile}",
                                      "--window-size=1280,1600", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ws_url = wait_until(self._page_ws, 60, "chromium's DevTools endpoint", interval=0.5)
        self._id = 0

    def _page_ws(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as resp:
                pages = [t for t in json.loads(resp.read()) if t.get("type") == "page"]
        except OSError:
            return None
        return pages[0]["webSocketDebuggerUrl"] if pages else None

    async def call(self, ws: Any, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        await ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            message = await ws.receive_json(timeout=60)
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message["result"]

    async def evaluate(self, ws: Any, expression: str) -> Any:
        result = await self.call(ws, "Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_dashboard_pushes_a_status_change_to_a_headless_chromium(pipeline: Pipeline, tmp_path: Path) -> None:
    import asyncio

    import aiohttp

    port = _free_port()
    server = subprocess.Popen([KUBECTL, "acgs", "dashboard", "-n", pipeline.namespace, "--port", str(port)],
                              env=pipeline.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    browser = Browser(tmp_path / "profile")
    try:
        assert server.stdout is not None and "Serving the ACGS dashboard" in server.stdout.readline()

        async def scenario() -> tuple[str, str, bool]:
            async with aiohttp.ClientSession() as session, session.ws_connect(browser.ws_url, max_msg_size=0) as ws:
                await browser.call(ws, "Page.navigate", url=f"http://127.0.0.1:{port}/")

                async def text_when(predicate: Any, what: str) -> str:
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        text = await browser.evaluate(ws, "document.body ? document.body.innerText : ''") or ""
                        if predicate(text):
                            return text
                        await asyncio.sleep(0.2)
                    raise AssertionError(f"the page never showed {what}; it shows:\n{text}")

                before = await text_when(lambda t: "live · updated" in t and TJ in t, "the first state")
                await browser.evaluate(ws, "window.__sameLoad = 42")
                # A status change the operator makes: a new (suspended) TrainingJob gets its phase.
                probe = training_job(pipeline.namespace, "dash-probe", suspend=True)
                pipeline.cluster.kubectl("apply", "-f", "-", input=probe, check=True)
                phase = wait_until(lambda: pipeline.get("tj", "dash-probe").get("status", {}).get("phase"), 30,
                                   "the operator to write dash-probe's phase")
                after = await text_when(lambda t: "dash-probe" in t and phase in t.split("dash-probe", 1)[1][:40],
                                        f"dash-probe {phase}")
                same_load = await browser.evaluate(ws, "window.__sameLoad === 42")
                shot = await browser.call(ws, "Page.captureScreenshot", format="png")
                (tmp_path / "dashboard.png").write_bytes(__import__("base64").b64decode(shot["data"]))
                return before, after, same_load

        before, after, same_load = asyncio.run(scenario())
    finally:
        browser.close()
        server.terminate()
        server.wait(10)
    mv = pipeline.get("tj", TJ)["status"]["modelVersion"]
    assert "dash-probe" not in before and same_load, "the change must arrive without a reload"
    for shown in (TJ, mv, DEP, "production", "ε spent / budget", "gate compliance"):
        assert shown in after, f"{shown!r} missing from the page"
    pipeline.cluster.kubectl("delete", "tj", "dash-probe", "-n", pipeline.namespace, "--wait=false")
    if os.environ.get("ACGS_SCREENSHOT_DIR"):
        Path(os.environ["ACGS_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shot = (tmp_path / "dashboard.png").read_bytes()
        (Path(os.environ["ACGS_SCREENSHOT_DIR"]) / "dashboard.png").write_bytes(shot)
