"""The committed CRDs are exactly what the models generate, and they are structural."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from acgs_operator import crdgen
from acgs_operator.api import KINDS

from ..conftest import ROOT


def test_committed_crds_match_the_models():
    stale = [str(path.relative_to(ROOT)) for path, text in crdgen.outputs(ROOT).items()
             if not path.exists() or path.read_text() != text]
    assert not stale, f"generated files are stale, run `make crds`: {stale}"


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
class TestStructural:
    def crd(self, info):
        return yaml.safe_load((ROOT / "crds" / f"acgs.io_{info.plural}.yaml").read_text())

    def test_no_refs_unions_or_preserve_unknown(self, info):
        for path, node in _walk(self.crd(info)):
            assert "$ref" not in node and "anyOf" not in node, path
            assert "x-kubernetes-preserve-unknown-fields" not in node, path

    def test_names_and_category(self, info):
        names = self.crd(info)["spec"]["names"]
        assert names["categories"] == ["acgs"] and names["shortNames"] == list(info.short_names)

    def test_every_property_is_described(self, info):
        schema = self.crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema["properties"]["spec"]):
            for name, prop in node.get("properties", {}).items():
                assert prop.get("description"), f"{path}.{name} has no description"

    def test_status_subresource_and_age_column(self, info):
        version = self.crd(info)["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"][-1]["name"] == "Age"
