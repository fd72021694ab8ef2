"""`quantgate evaluate --local --progressive` on the simulator with the full-size `local-full` suite (0-shot).

A clear Ship pair (a copy of the reference) and a clear Block pair, each on all six tasks at their
official sizes (28,659 documents per model), stop at the first stage, having used about a tenth of
the documents. A pair planted right at the Ship/Monitor edge (every task's accuracy 1% below the
reference's, so the average drop is 1% up to rounding) runs to 100% and ends with the ordinary
verdict of the same documents. That pair runs ARC-Challenge and GSM8K only (2,491 documents per
model, still at full size): a 100% run of all six takes minutes per model on a two-core machine
(docs/decision.md), too long for `make test`.
"""

import json
from pathlib import Path

import pytest
import yaml

from quantgate.cli import main
from quantgate.decision import Policy, compare
from quantgate.lmeval.full_sizes import TASK_SIZES
from quantgate.lmeval.results import load_run
from quantgate.simulate import SimulatedFleet
from quantgate.simulate.config import FleetConfig

ALL = tuple(TASK_SIZES)
EDGE_TASKS = ("arc_challenge", "gsm8k")
BASE = {"arc_challenge": 0.60, "hellaswag": 0.80, "mmlu": 0.66, "truthfulqa_mc2": 0.52, "winogrande": 0.75,
        "gsm8k": 0.52}
FLEET = FleetConfig.model_validate({
    "seed": 13, "reference": "fp16", "suites": ["local-full"],
    "variants": [
        {"name": "fp16", "accuracy": BASE},
        {"name": "copy", "accuracy": BASE},
        {"name": "broken", "accuracy": {t: v * 0.6 for t, v in BASE.items()}, "flipRate": {"default": 0.3}},
        {"name": "edge", "accuracy": {t: v * 0.99 for t, v in BASE.items()}, "flipRate": {"default": 0.04}},
    ]})


def evaluate(fleet, out: Path, candidate: str, tasks, *extra) -> tuple[int, dict]:
    spec = {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "metadata": {"name": candidate},
            "spec": {"baseline": {"endpoint": {"url": fleet.url("fp16")}},
                     "candidate": {"endpoint": {"url": fleet.url(candidate)}}, "suite": "local-full",
                     "tasks": [{"name": t, "numFewshot": 0} for t in tasks], "profile": "general"}}
    path = out / f"{candidate}.yaml"
    path.write_text(yaml.safe_dump(spec))
    rc = main(["evaluate", "--local", "-f", str(path), "--output", str(out / candidate), *extra])
    return rc, json.loads((out / candidate / "comparison.json").read_text())


@pytest.fixture(scope="module")
def fleet():
    with SimulatedFleet(FLEET) as f:
        yield f


def test_clear_ship_and_block_pairs_stop_early_at_full_size(fleet, tmp_path):
    total = sum(TASK_SIZES.values())
    rc, ship = evaluate(fleet, tmp_path, "copy", ALL, "--progressive")
    p = ship["progressive"]
    assert rc == 0 and ship["verdict"] == "Ship"
    assert p["itemsTotal"] == total == 28659  # every task at its official size
    assert p["stage"] == 1 and p["stoppedEarly"] is True and p["itemsEvaluated"] < 0.15 * total
    assert {t["task"]: t["itemsTotal"] for t in ship["tasks"]} == TASK_SIZES
    rc, block = evaluate(fleet, tmp_path, "broken", ALL, "--progressive")
    p = block["progressive"]
    assert rc == 1 and block["verdict"] == "Block"
    assert p["stage"] == 1 and p["stoppedEarly"] is True and p["itemsTotal"] == total
    assert p["itemsEvaluated"] < 0.15 * total
    # the simulator recognised every full-size request it was sent
    assert all(fleet.stats(v)["unknownPrompts"] == 0 for v in ("fp16", "copy", "broken"))


def test_a_pair_planted_at_the_ship_monitor_edge_runs_to_100_percent(fleet, tmp_path):
    rc, edge = evaluate(fleet, tmp_path, "edge", EDGE_TASKS, "--progressive")
    p = edge["progressive"]
    assert p["stage"] == 4 and p["stoppedEarly"] is False
    assert p["itemsEvaluated"] == p["itemsTotal"] == sum(TASK_SIZES[t] for t in EDGE_TASKS)
    assert abs(edge["averageDrop"] - 1.0) < 0.25  # planted at the edge, up to rounding
    stages = json.loads((tmp_path / "edge" / "stages.json").read_text())
    assert [s["stop"] for s in stages] == [False, False, False, True]
    # at 100% the verdict is the ordinary rule's on the same documents
    ordinary = compare(load_run(tmp_path / "edge" / "baseline"), load_run(tmp_path / "edge" / "candidate"),
                       Policy(profile="general"))
    assert ordinary.verdict.value == edge["verdict"] and ordinary.average_drop == pytest.approx(edge["averageDrop"])
    assert rc == (0 if ordinary.promotable else 1)
    assert fleet.stats("edge")["unknownPrompts"] == 0
