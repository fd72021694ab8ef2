"""The committed CRD is exactly what the API models generate, and it is structural."""

from pathlib import Path

import yaml

from quantgate.api import crd

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "manifests/crd/modelevaluations.quantgate.io.yaml"


def test_committed_crd_matches_models():
    assert COMMITTED.read_text() == crd.render(), (
        "manifests/crd is stale: run `quantgate crd -o manifests/crd/modelevaluations.quantgate.io.yaml`"
    )


def _walk(node, path="$"):
    yield path, node
    for key, sub in (node.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{key}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")


def test_schema_is_structural():
    schema = crd.openapi_schema()
    for path, node in _walk(schema):
        # Kubernetes' structural rule: a type everywhere but under int-or-string or preserve-unknown-fields
        assert ("type" in node or node.get("x-kubernetes-int-or-string")
                or node.get("x-kubernetes-preserve-unknown-fields")), path
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "prefixItems", "title", "const", "$defs"):
            assert forbidden not in node, f"{path} has {forbidden}"
        assert node.get("additionalProperties") is not False, path
        if node.get("default", 0) is None:
            raise AssertionError(f"{path} has default null")


def test_names_printer_columns_and_status():
    doc = yaml.safe_load(COMMITTED.read_text().split("\n", 1)[1])
    spec = doc["spec"]
    assert spec["group"] == "quantgate.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["meval"] and spec["names"]["categories"] == ["quantgate"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Baseline", "Candidate", "Phase", "Verdict", "Avg Drop", "Age"]


def test_schema_carries_descriptions_enums_defaults_and_cel():
    spec = crd.openapi_schema()["properties"]["spec"]
    props = spec["properties"]
    assert props["profile"]["enum"][0] == "general" and props["profile"]["default"] == "general"
    assert props["dropMode"]["enum"] == ["relative", "absolute"]
    assert props["runner"]["properties"]["backoffLimit"]["maximum"] == 10
    assert props["thresholds"]["default"] == {"ship": 1.0, "monitor": 3.0, "abTest": 5.0}
    assert any(
        "self.ship <= self.monitor" in r["rule"] for r in props["thresholds"]["x-kubernetes-validations"]
    )
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("has(self.suite) && has(self.tasks)" in r for r in rules)
    assert any("math-tutoring" in r for r in rules)
    one = props["candidate"]["x-kubernetes-validations"][0]["rule"]
    assert "size() == 1" in one
    resources = props["runner"]["properties"]["resources"]["properties"]["requests"]
    assert resources["additionalProperties"] == {"x-kubernetes-int-or-string": True}
    for path, node in _walk(spec, "$"):
        if path.count(".") == 1 and "*" not in path and "[" not in path:
            assert node.get("description"), f"{path} lacks a description (kubectl explain)"


def test_conditions_are_a_map_list():
    status = crd.openapi_schema()["properties"]["status"]
    cond = status["properties"]["conditions"]
    assert cond["x-kubernetes-list-type"] == "map" and cond["x-kubernetes-list-map-keys"] == ["type"]
    assert status["properties"]["verdict"]["enum"] == ["Ship", "Monitor", "ABTest", "Block"]


def test_results_from_stands_alone_in_the_baseline():
    import pytest
    from pydantic import ValidationError

    from quantgate.api.v1alpha1 import BaselineSource

    assert BaselineSource.model_validate({"resultsFrom": "a"}).describe() == "resultsFrom:a"
    with pytest.raises(ValidationError, match="resultsFrom reuses finished results: remove inferenceServiceRef"):
        BaselineSource.model_validate({"resultsFrom": "a", "inferenceServiceRef": {"name": "fp16"}})
    with pytest.raises(ValidationError, match="exactly one of"):
        BaselineSource.model_validate({})
