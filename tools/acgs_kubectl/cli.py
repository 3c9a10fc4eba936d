"""kubectl acgs: trees of the acgs.io objects and the rollout commands, as a kubectl plugin.

kubectl finds `kubectl-acgs` on PATH (installed by `make setup` into .venv/bin) and runs it for
`kubectl acgs ...`; `kubectl_complete-acgs` answers kubectl's shell completion for the plugin
(kubectl ≥ 1.26 asks it with cobra's `__complete` protocol)."""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from typing import Any, Callable, Sequence

from acgs_contract import timefmt
from kubernetes.client.exceptions import ApiException

from . import completion, tree
from .client import ALIASES, Kube, PluginError, resolve_kind

ROLLOUT_COMMANDS = {
    "promote": "Promote the preview of a Deployment now (its pre-promotion checks still apply).",
    "abort": "Stop the rollout in progress; during the post-promotion window, roll back to the previous version.",
    "undo": "Serve the previous ModelVersion again and hold the current one back.",
    "retry": "Roll out a held-back ModelVersion again.",
}
EXAMPLES = {
    "get": """  # Every Deployment, TrainingJob and ModelVersion of the namespace as trees
  kubectl acgs get -n team-a

  # One Deployment: its colors and pods, the versions it serves, their TrainingJobs, flywheel runs
  kubectl acgs get deployment constitutional-ai

  # A TrainingJob, its Job and pods, the ModelVersion it produced and where that is served; refresh
  kubectl acgs get tj cai-v1 --watch""",
    "watch": """  # Redraw the tree of one Deployment whenever it changes, for at most 10 minutes
  kubectl acgs watch deployment constitutional-ai --timeout 10m""",
    "promote": "  kubectl acgs promote constitutional-ai\n  kubectl acgs promote constitutional-ai --wait",
    "abort": "  kubectl acgs abort constitutional-ai",
    "undo": "  kubectl acgs undo constitutional-ai",
    "retry": "  kubectl acgs retry constitutional-ai",
    "retrain": """  # Train again with the same spec (a new TrainingJob named cai-v1-<random>)
  kubectl acgs retrain cai-v1

  # Train from the model the first run produced, under a chosen name
  kubectl acgs retrain cai-v1 --name cai-v2 --parent-version constitutional-ai-1-0-0""",
    "dashboard": """  # Open http://127.0.0.1:8765/ : training, versions, rollouts and flywheel runs, updated live
  kubectl acgs dashboard -n acgs-demo""",
    "completion": """  # bash, for the current shell (kubectl ≥ 1.26 also completes `kubectl acgs` itself through
  # kubectl_complete-acgs, installed next to kubectl-acgs)
  source <(kubectl acgs completion bash)""",
}


def duration(text: str) -> float:
    """kubectl's durations: 30s, 5m, 1h (a bare number is seconds)."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: expected e.g. 30s, 5m or 1h") from None


class CobraParser(argparse.ArgumentParser):
    """argparse with kubectl's (cobra's) help layout and error style: a description, then Usage,
    Available Commands, Examples and Flags sections; errors as `error: ...` with exit code 1."""

    def __init__(self, *args: Any, examples: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.examples = examples

    def format_help(self) -> str:
        parts = [self.description or "", "", "Usage:", f"  {self.usage}"]
        subs = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
        if subs:
            commands = [(c.dest, c.help or "") for c in subs[0]._choices_actions]  # noqa: SLF001
            width = max(len(name) for name, _ in commands)
            parts += ["", "Available Commands:"] + [f"  {name.ljust(width)}  {help_}" for name, help_ in commands]
        if self.examples:
            parts += ["", "Examples:", self.examples]
        flags = []
        for action in self._actions:
            if not action.option_strings:
                continue
            long = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
            short = next((o for o in action.option_strings if not o.startswith("--")), None)
            kind = ("" if action.nargs == 0 else " string" if action.type is None
                    else " int" if action.type is int else " duration")
            name = f"{short + ', ' if short else '    '}{long}{kind}"
            help_ = "help for " + self.prog.split()[-1] if long == "--help" else action.help or ""
            flags.append((name, help_))
        width = max(len(name) for name, _ in flags)
        parts += ["", "Flags:"] + [f"  {name.ljust(width)}   {help_}" for name, help_ in flags]
        if subs:
            parts += ["", f'Use "{self.prog} [command] --help" for more information about a command.']
        return "\n".join(parts).lstrip("\n") + "\n"

    def error(self, message: str) -> Any:
        sys.stderr.write(f"error: {message}\nSee '{self.prog} --help' for usage.\n")
        sys.exit(1)


def _parser(name: str, parent: Any, help_: str, usage: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(
        name, help=help_, description=help_, examples=EXAMPLES.get(name),
        usage=f"kubectl acgs {name} {usage}", prog=f"kubectl acgs {name}")
    if name != "completion":
        parser.add_argument("-n", "--namespace", help="If present, the namespace scope for this CLI request")
        parser.add_argument("--kubeconfig", help="Path to the kubeconfig file to use for CLI requests.")
        parser.add_argument("--context", help="The name of the kubeconfig context to use")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = CobraParser(
        prog="kubectl acgs", usage="kubectl acgs [command] [flags]",
        description="Inspect and steer ACGS TrainingJobs, ModelVersions, Deployments and FlywheelPolicies:\n"
                    "trees of what each owns, produced or serves, and the rollout commands the operator\n"
                    "understands (the acgs.io/promote|abort|undo|retry annotations).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CobraParser)
    for name, help_ in (("get", "Show an object and what it owns, produced or serves, as a tree"),
                        ("watch", "Show the tree and redraw it whenever it changes")):
        p = _parser(name, sub, help_, "[KIND [NAME]] [flags]")
        p.add_argument("kind", nargs="?", metavar="KIND",
                       help="trainingjob (tj), modelversion (mv), deployment (mdeploy) or flywheelpolicy (fwp)")
        p.add_argument("name", nargs="?", metavar="NAME")
        if name == "get":
            p.add_argument("-w", "--watch", action="store_true", help="After showing the tree, watch for changes")
        p.add_argument("--timeout", type=duration, default=None, help="Stop watching after this long (e.g. 5m)")
        p.add_argument("--interval", type=duration, default=1.0, help="How often to look for changes (default 1s)")
        p.add_argument("--no-color", action="store_true", help="Never color the status column")
    for name, help_ in ROLLOUT_COMMANDS.items():
        p = _parser(name, sub, help_, "DEPLOYMENT [flags]")
        p.add_argument("name", metavar="DEPLOYMENT", help="acgs.io Deployment (deployment/NAME or NAME)")
        p.add_argument("--wait", action="store_true",
                       help="Wait until the operator has taken the command (the annotation is gone)")
        p.add_argument("--timeout", type=duration, default=60.0, help="How long --wait waits (default 1m)")
    p = _parser("retrain", sub, "Start a new TrainingJob with the spec of an existing one", "TRAININGJOB [flags]")
    p.add_argument("name", metavar="TRAININGJOB", help="TrainingJob to copy (trainingjob/NAME or NAME)")
    p.add_argument("--name", dest="new_name", help="Name of the new TrainingJob (default: NAME-<random>)")
    p.add_argument("--parent-version", help="ModelVersion to continue from (spec.parentVersion)")
    p.add_argument("--dry-run", action="store_true", help="Print the new TrainingJob instead of creating it")
    p = _parser("dashboard", sub, "Serve a live page of the namespace on localhost (your kubeconfig's RBAC)",
                "[flags]")
    p.add_argument("--address", default="127.0.0.1", help="Address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="Port to listen on (default 8765)")
    p = _parser("completion", sub, "Output shell completion code for bash or zsh", "SHELL")
    p.add_argument("shell", choices=("bash", "zsh"), metavar="SHELL", help="bash or zsh")
    return parser


def _target(text: str, want: str) -> str:
    if "/" in text:
        kind, name = text.split("/", 1)
        if resolve_kind(kind) != want:
            raise PluginError(f"{text}: this command works on {want}s, not {resolve_kind(kind)}s")
        return name
    return text


def _draw(kube: Kube, args: argparse.Namespace) -> tuple[str, str]:
    """The tree's text, and the same without ages (what `watch` compares: a ticking age is no change)."""
    kind = resolve_kind(args.kind) if args.kind else None
    snap = kube.snapshot()
    if kind and args.name:
        kube.get(kind, args.name)  # NotFound names the object, like kubectl
    trees = tree.roots(snap, kind, args.name)
    color = not args.no_color and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if not trees:
        empty = f"No resources found in {kube.namespace} namespace.\n"
        return empty, empty
    return tree.render(trees, snap.now, color), tree.render(trees, None)


def _watch(draw: Callable[[], tuple[str, str]], interval: float, timeout: float | None) -> None:
    """Print the tree, then again each time it changes; on a terminal, redraw in place."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    tty = sys.stdout.isatty()
    while True:
        text, key = draw()
        if key != last:
            if tty:
                sys.stdout.write("\033[H\033[2J")
            elif last is not None:
                sys.stdout.write(f"--- {timefmt.now()}\n")
            sys.stdout.write(text)
            sys.stdout.flush()
            last = key
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))


def _rollout_command(kube: Kube, args: argparse.Namespace) -> None:
    name = _target(args.name, "Deployment")
    kube.get("Deployment", name)
    key = f"acgs.io/{args.command}"
    kube.patch("Deployment", name, {"metadata": {"annotations": {key: "true"}}})
    print(f"deployment.acgs.io/{name} {args.command} requested")
    if args.wait:
        deadline = time.monotonic() + args.timeout
        while key in (kube.get("Deployment", name)["metadata"].get("annotations") or {}):
            if time.monotonic() > deadline:
                raise PluginError(f"timed out after {args.timeout:g}s waiting for the operator to take {key} "
                                  f"(is it running?)")
            time.sleep(0.5)
        status = kube.get("Deployment", name).get("status") or {}
        print(f"deployment.acgs.io/{name} {status.get('phase', '')}: {status.get('message', '')}".rstrip(": "))


def retrain_manifest(original: dict[str, Any], new_name: str | None, parent_version: str | None) -> dict[str, Any]:
    """A new TrainingJob with `original`'s spec (its labels, not its status or identity)."""
    meta = original["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith("argocd.argoproj.io/")}
    spec = copy.deepcopy(original.get("spec") or {})
    if parent_version:
        spec["parentVersion"] = parent_version
    metadata: dict[str, Any] = {"namespace": meta["namespace"], "labels": labels,
                                "annotations": {"acgs.io/retrained-from": meta["name"]}}
    if new_name:
        metadata["name"] = new_name
    else:
        metadata["generateName"] = f"{meta['name'][:57]}-"
    return {"apiVersion": original["apiVersion"], "kind": "TrainingJob", "metadata": metadata, "spec": spec}


def _retrain(kube: Kube, args: argparse.Namespace) -> None:
    original = kube.get("TrainingJob", _target(args.name, "TrainingJob"))
    if args.parent_version:
        kube.get("ModelVersion", args.parent_version)
    manifest = retrain_manifest(original, args.new_name, args.parent_version)
    if args.dry_run:
        import yaml

        sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))
        return
    created = kube.create("TrainingJob", manifest)
    print(f"trainingjob.acgs.io/{created['metadata']['name']} created")


def run(argv: Sequence[str]) -> int:
    if argv and argv[0] == "__complete":
        return completion.complete(list(argv[1:]), build_parser(), ALIASES)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "completion":
        sys.stdout.write(completion.script(args.shell))
        return 0
    kube = Kube.connect(args.kubeconfig, args.context, args.namespace)
    if args.command in ("get", "watch"):
        if args.command == "watch" or args.watch:
            _watch(lambda: _draw(kube, args), args.interval, args.timeout)
        else:
            sys.stdout.write(_draw(kube, args)[0])
    elif args.command in ROLLOUT_COMMANDS:
        _rollout_command(kube, args)
    elif args.command == "retrain":
        _retrain(kube, args)
    elif args.command == "dashboard":
        from .dashboard import serve

        serve(kube, args.address, args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ApiException as error:
        print(f"Error from server ({error.reason}): {error.body or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def complete_main() -> int:
    """kubectl_complete-acgs: kubectl runs it as `kubectl_complete-acgs __complete ARGS...`."""
    args = sys.argv[1:]
    if args and args[0] == "__complete":
        args = args[1:]
    try:
        return completion.complete(args, build_parser(), ALIASES)
    except Exception:  # noqa: BLE001 - a completion must never print a traceback into the shell
        print(":4")
        return 0
