"""python -m acgs_monitoring [--check]: write docs/metrics.md and manifests/monitoring/dashboard.json
from code, or (--check) fail when the committed files differ (like `make crds-check`)."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from . import catalogue, dashboard

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = {
    Path("docs/metrics.md"): lambda: catalogue.markdown(catalogue.all_metrics()),
    Path("manifests/monitoring/dashboard.json"): dashboard.render,
}


def stale(root: Path = ROOT) -> list[str]:
    """Unified diffs of every generated file that differs from its committed copy."""
    diffs = []
    for rel, make in OUTPUTS.items():
        want = make()
        path = root / rel
        have = path.read_text(encoding="utf-8") if path.exists() else ""
        if have != want:
            diffs.append("".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                                      f"{rel} (committed)", f"{rel} (generated)")))
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acgs_monitoring", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is stale")
    args = parser.parse_args(argv)
    if args.check:
        diffs = stale()
        for diff in diffs:
            sys.stdout.write(diff)
        if diffs:
            print("stale generated files: run `make monitoring`", file=sys.stderr)
        return 1 if diffs else 0
    for rel, make in OUTPUTS.items():
        (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / rel).write_text(make(), encoding="utf-8")
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
