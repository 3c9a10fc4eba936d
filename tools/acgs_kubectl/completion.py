"""Shell completion in cobra's `__complete` protocol, the one kubectl uses for itself and, since
kubectl 1.26, for plugins (it runs `kubectl_complete-acgs __complete WORDS... CURRENT`): one
candidate per line (`value<TAB>description`), then `:<directive>`; 4 = do not complete file names."""

from __future__ import annotations

import argparse
import sys


NO_FILE_COMP = 4
VALUE_FLAGS = {"-n", "--namespace", "--kubeconfig", "--context", "--timeout", "--interval", "--name",
               "--parent-version"}
KIND_WORDS = ("trainingjobs", "modelversions", "deployments", "flywheelpolicies")
NAME_OF = {"promote": "Deployment", "abort": "Deployment", "undo": "Deployment", "retry": "Deployment",
           "retrain": "TrainingJob"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return dict(action.choices)


def _help_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return {c.dest: c.help or "" for c in action._choices_actions}  # noqa: SLF001


def _flag_value(words: list[str], *names: str) -> str | None:
    for i, word in enumerate(words):
        for name in names:
            if word == name and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def _names(words: list[str], kind: str) -> list[str]:
    from .client import Kube

    kube = Kube.connect(_flag_value(words, "--kubeconfig"), _flag_value(words, "--context"),
                        _flag_value(words, "-n", "--namespace"))
    return kube.names(kind)


def _namespaces(words: list[str]) -> list[str]:
    from kubernetes import client

    from .client import Kube

    kube = Kube.connect(_flag_value(words, "--kubeconfig"), _flag_value(words, "--context"), None)
    return sorted(n.metadata.name for n in client.CoreV1Api(kube.api).list_namespace().items
                  if n.metadata and n.metadata.name)


def candidates(args: list[str], parser: argparse.ArgumentParser, aliases: dict[str, str]) -> list[str]:
    words, current = args[:-1], (args[-1] if args else "")
    subs = _subparsers(parser)
    command = next((w for w in words if not w.startswith("-")), None)
    if command is None:
        return [f"{name}\t{help_}" for name, help_ in _help_of(parser).items() if name.startswith(current)]
    sub = subs.get(command)
    if sub is None:
        return []
    if current.startswith("-"):
        flags = [opt for a in sub._actions for opt in a.option_strings if opt.startswith("--")]  # noqa: SLF001
        return sorted(f for f in flags if f.startswith(current))
    rest = words[words.index(command) + 1:]
    if rest and rest[-1] in VALUE_FLAGS:
        if rest[-1] in ("-n", "--namespace"):
            return [n for n in _namespaces(words) if n.startswith(current)]
        return []
    positional, skip = [], False
    for word in rest:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in VALUE_FLAGS
        else:
            positional.append(word)
    if command == "completion":
        return [s for s in ("bash", "zsh") if s.startswith(current)] if not positional else []
    if command in ("get", "watch"):
        if not positional:
            return [k for k in KIND_WORDS if k.startswith(current)]
        if len(positional) == 1 and positional[0].lower() in aliases:
            return [n for n in _names(words, aliases[positional[0].lower()]) if n.startswith(current)]
        return []
    if command in NAME_OF and not positional:
        return [n for n in _names(words, NAME_OF[command]) if n.startswith(current)]
    return []


def complete(args: list[str], parser: argparse.ArgumentParser, aliases: dict[str, str]) -> int:
    try:
        found = candidates(args, parser, aliases)
    except Exception as error:  # noqa: BLE001 - no cluster: offer nothing rather than a traceback
        print(f"completion: {error}", file=sys.stderr)
        found = []
    for candidate in found:
        print(candidate)
    print(f":{NO_FILE_COMP}")
    return 0


BASH = r"""# bash completion for kubectl-acgs; `kubectl acgs` itself completes through kubectl_complete-acgs
_kubectl_acgs() {
    local cur="${COMP_WORDS[COMP_CWORD]}" out directive
    out=$(kubectl-acgs __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return
    directive=${out##*:}
    out=${out%:*}
    if (( directive & 4 )); then compopt +o default 2>/dev/null; fi
    local IFS=$'\n'
    COMPREPLY=( $(compgen -W "$(printf '%s\n' "$out" | cut -f1)" -- "$cur") )
}
complete -o default -F _kubectl_acgs kubectl-acgs
"""


def script(shell: str) -> str:
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + BASH
    return BASH


