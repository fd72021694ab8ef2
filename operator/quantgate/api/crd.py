"""Generate the ModelEvaluation and ModelEvaluationMatrix CRDs from the pydantic models.

pydantic emits JSON Schema 2020-12; the apiserver wants a *structural* OpenAPI v3
schema: every node typed, no $ref, no anyOf-with-null for optional fields (optional
simply means "not required"), no additionalProperties: false, boolean
exclusiveMinimum. `structural()` rewrites one into the other; anything it does not
understand raises, so a new field type cannot silently produce a schema the
apiserver rejects.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import yaml

from quantgate.api import matrix
from quantgate.api import v1alpha1 as api

_DROP = {"title", "additionalProperties", "$defs"}


def _resolve(node: dict, defs: dict) -> dict:
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)  # the field's description/default win over the model's
        return target
    return node


def structural(node: dict, defs: dict) -> dict:
    """One pydantic schema node → a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    if node.get("x-kubernetes-preserve-unknown-fields") and "type" not in node and "anyOf" not in node:
        return {"x-kubernetes-preserve-unknown-fields": True}  # any value: the operator's model checks it
    if "anyOf" in node:
        options = [_resolve(o, defs) for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            rest.pop("default")
        types = sorted(o.get("type") for o in options)
        if len(options) == 1:
            merged = {**options[0], **rest}
            return structural(merged, defs)
        if types == ["integer", "string"]:
            return {**{k: v for k, v in rest.items() if k in ("description", "default")},
                    "x-kubernetes-int-or-string": True}
        raise ValueError(f"cannot express anyOf {types} structurally")
    if node.get("default", 0) is None:
        node = {k: v for k, v in node.items() if k != "default"}
    out: dict = {}
    kind = node.get("type")
    if kind is None and "enum" in node:
        kind = "string"
    if kind is None and "const" in node:
        kind, node = "string", {**node, "enum": [node["const"]]}
    if kind is None:
        raise ValueError(f"untyped schema node: {node}")
    out["type"] = kind
    if "description" in node:
        out["description"] = " ".join(node["description"].split())
    for key in ("enum", "default", "minimum", "maximum", "minLength", "maxLength", "pattern",
                "minItems", "maxItems", "minProperties", "maxProperties", "format"):
        if key in node:
            out[key] = node[key]
    for key, bool_key, base in (("exclusiveMinimum", "exclusiveMinimum", "minimum"),
                                ("exclusiveMaximum", "exclusiveMaximum", "maximum")):
        if key in node:
            out[base] = node[key]
            out[bool_key] = True
    for key in node:
        if key.startswith("x-kubernetes-"):
            out[key] = node[key]
    if kind == "object":
        props = node.get("properties")
        if props:
            out["properties"] = {name: structural(sub, defs) for name, sub in props.items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        elif isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = structural(node["additionalProperties"], defs)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
        if "maxLength" in out:  # dict fields: pydantic's max_length means entries
            out["maxProperties"] = out.pop("maxLength")
    if kind == "array":
        if "prefixItems" in node:
            first = structural(node["prefixItems"][0], defs)
            out["items"] = first
        else:
            out["items"] = structural(node["items"], defs)
    return out


def _schema_of(model) -> dict:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def openapi_schema(kind: str = api.KIND) -> dict:
    k = KINDS[kind]
    return {
        "type": "object",
        "description": k.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": f"APIVersion of this object ({api.GROUP}/{api.VERSION})."},
            "kind": {"type": "string", "description": f"Kind of this object ({kind})."},
            "metadata": {"type": "object"},
            "spec": _schema_of(k.spec),
            "status": _schema_of(k.status),
        },
    }


PRINTER_COLUMNS = [
    {"name": "Baseline", "type": "string", "jsonPath": ".status.models.baseline"},
    {"name": "Candidate", "type": "string", "jsonPath": ".status.models.candidate"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Verdict", "type": "string", "jsonPath": ".status.verdict"},
    {"name": "Avg Drop", "type": "number", "jsonPath": ".status.averageDrop", "format": "float"},
    {"name": "Stage", "type": "integer", "jsonPath": ".status.progressive.stage", "priority": 1},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
    {"name": "Job", "type": "string", "jsonPath": ".status.jobName", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


MATRIX_PRINTER_COLUMNS = [
    {"name": "Selected", "type": "string", "jsonPath": ".status.selected"},
    {"name": "Rows Done", "type": "string", "jsonPath": ".status.rowsDone"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "priority": 1},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


@dataclass(frozen=True)
class Kind:
    plural: str
    singular: str
    short_names: list[str]
    description: str
    spec: type
    status: type
    columns: list[dict]
    path: str  # where `make crd` writes it


KINDS = {
    api.KIND: Kind(api.PLURAL, api.SINGULAR, [api.SHORT_NAME],
                   "A candidate model evaluated against its baseline; the verdict gates promotion.",
                   api.ModelEvaluationSpec, api.ModelEvaluationStatus, PRINTER_COLUMNS,
                   "manifests/crd/modelevaluations.quantgate.io.yaml"),
    matrix.KIND: Kind(matrix.PLURAL, matrix.SINGULAR, matrix.SHORT_NAMES,
                      "Several candidates evaluated against one baseline (one child ModelEvaluation each); "
                      "status selects the smallest variant that may ship.",
                      matrix.ModelEvaluationMatrixSpec, matrix.ModelEvaluationMatrixStatus, MATRIX_PRINTER_COLUMNS,
                      "manifests/crd/modelevaluationmatrices.quantgate.io.yaml"),
}


def crd(kind: str = api.KIND) -> dict:
    k = KINDS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{k.plural}.{api.GROUP}",
            "labels": {"app.kubernetes.io/name": "quantgate", "app.kubernetes.io/part-of": "quantgate"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": k.plural,
                "singular": k.singular,
                "shortNames": list(k.short_names),
                "categories": [api.CATEGORY],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": k.columns,
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }


HEADER = "# Generated by `quantgate crd` from operator/quantgate/api/v1alpha1.py. Do not edit.\n"


class _Dumper(yaml.SafeDumper):
    """Quotes y/Y/n/N: kubectl and helm read YAML 1.1, where a plain `n:` key is the boolean false
    (the apiserver then prunes status.tasks[].n); PyYAML would write it unquoted."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))


def render(kind: str = api.KIND) -> str:
    header = HEADER if kind == api.KIND else HEADER.replace(
        "`quantgate crd`", f"`quantgate crd --kind {kind}`").replace("api/v1alpha1.py", "api/matrix.py")
    return header + yaml.dump(crd(kind), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
