"""No package imports upward: quantgate's packages form layers, and each module imports only
from its own package or the layers below it (docs/development.md, "Layout")."""

import ast
from pathlib import Path

import quantgate

ROOT = Path(quantgate.__file__).parent
# Bottom to top. A package may import its own modules and anything in a lower layer.
LAYERS = [
    {"errors", "__init__"},
    {"core"},
    {"decision"},
    {"api"},
    {"engines"},  # lm-eval models (llama.cpp) and their tools: below the runner that registers them
    {"lmeval"},
    {"metrics", "k8s"},
    {"report"},
    {"simulate", "dev"},
    {"demo"},
    {"commands"},
    {"cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "quantgate":
                names = [f"quantgate.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "quantgate" and len(parts) > 1:
                yield node.lineno, parts[1]


def test_every_package_has_a_layer():
    units = {_unit(p) for p in ROOT.rglob("*.py")}
    assert units <= set(RANK), f"packages without a layer: {sorted(units - set(RANK))}"


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        unit = _unit(path)
        for line, target in _imports(path):
            if target != unit and target in RANK and RANK[target] > RANK[unit]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({unit}) imports quantgate.{target}")
    assert not upward, "imports upward:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    probe = tmp_path / "m.py"
    probe.write_text("from quantgate.k8s import reconcile\nimport quantgate.errors\nfrom quantgate import api\n")
    assert [t for _, t in _imports(probe)] == ["k8s", "errors", "api"]
