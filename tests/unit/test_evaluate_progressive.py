"""`quantgate evaluate --local --progressive` on the simulator (local data, 0-shot; three of the six
tasks — a multiple-choice task, MMLU's subjects as strata, GSM8K's generation — to keep it quick).

A clear Ship pair (a copy of the reference) and a clear Block pair stop at the first stage;
a pair near a verdict boundary runs to 100% and ends with the ordinary verdict. Stages append:
the requests of all stages together are those of one full run (lm-eval's request cache
answers the earlier stages' documents).
"""

import json
from pathlib import Path

import pytest
import yaml

from quantgate.cli import main
from quantgate.decision import Policy, compare
from quantgate.lmeval.results import load_run
from quantgate.simulate import SimulatedFleet
from quantgate.simulate.config import FleetConfig

TASKS = ("arc_challenge", "mmlu", "gsm8k")
BASE = {"arc_challenge": 0.60, "hellaswag": 0.80, "mmlu": 0.66, "truthfulqa_mc2": 0.52, "winogrande": 0.75,
        "gsm8k": 0.52}
FLEET = FleetConfig.model_validate({
    "seed": 11, "reference": "fp16",
    "variants": [
        {"name": "fp16", "accuracy": BASE},
        {"name": "copy", "accuracy": BASE},
        {"name": "broken", "accuracy": {t: v * 0.6 for t, v in BASE.items()}, "flipRate": {"default": 0.3}},
        # about 1.3% average drop: 0.3 from the Ship/Monitor edge, far inside no interval of the small suite
        {"name": "edge", "accuracy": {t: v * 0.987 for t, v in BASE.items()}, "flipRate": {"default": 0.04}},
    ]})


def evaluate(fleet, out: Path, candidate: str, *extra) -> tuple[int, dict]:
    spec = {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "metadata": {"name": candidate},
            "spec": {"baseline": {"endpoint": {"url": fleet.url("fp16")}},
                     "candidate": {"endpoint": {"url": fleet.url(candidate)}},
                     "tasks": [{"name": t, "numFewshot": 0} for t in TASKS], "profile": "general"}}
    path = out / f"{candidate}.yaml"
    path.write_text(yaml.safe_dump(spec))
    rc = main(["evaluate", "--local", "--local-data", "-f", str(path), "--output", str(out / candidate), *extra])
    return rc, json.loads((out / candidate / "comparison.json").read_text())


@pytest.fixture(scope="module")
def fleet():
    with SimulatedFleet(FLEET) as f:
        yield f


def test_clear_ship_and_block_stop_at_the_first_stage(fleet, tmp_path, capsys):
    rc, ship = evaluate(fleet, tmp_path, "copy", "--progressive")
    assert rc == 0 and ship["verdict"] == "Ship"
    p = ship["progressive"]
    assert p["stage"] == 1 and p["stoppedEarly"] is True and p["itemsEvaluated"] < 0.2 * p["itemsTotal"]
    assert all(t["n"] < t["itemsTotal"] for t in ship["tasks"])
    assert ship["reasons"][0].startswith("progressive: stopped early at stage 1/4")
    rc, block = evaluate(fleet, tmp_path, "broken", "--progressive")
    assert rc == 1 and block["verdict"] == "Block" and block["progressive"]["stage"] == 1
    err = capsys.readouterr().err
    assert "[progressive] stage 1/4 (10%)" in err and "stop: Ship" in err and "stop: Block" in err


def test_a_pair_near_a_boundary_runs_to_100_percent_and_stages_append(fleet, tmp_path, capsys):
    rc, edge = evaluate(fleet, tmp_path, "edge", "--progressive")
    p = edge["progressive"]
    assert p["stage"] == 4 and p["stoppedEarly"] is False and p["itemsEvaluated"] == p["itemsTotal"]
    err = capsys.readouterr().err
    assert err.count("continue:") == 3
    # the same pair without --progressive: the same verdict and drops from the same documents
    (tmp_path / "plain").mkdir()
    rc_plain, plain = evaluate(fleet, tmp_path / "plain", "edge")
    assert rc_plain == rc and plain["verdict"] == edge["verdict"] and plain["averageDrop"] == edge["averageDrop"]
    assert [t["drop"] for t in plain["tasks"]] == [t["drop"] for t in edge["tasks"]]
    # stages append: the four stages together sent each request once, as the plain run did
    stages = json.loads((tmp_path / "edge" / "stages.json").read_text())
    full = json.loads((tmp_path / "plain" / "edge" / "candidate" / "manifest.json").read_text())
    assert [s["fraction"] for s in stages] == [0.1, 0.25, 0.5, 1.0]
    assert [s["stop"] for s in stages] == [False, False, False, True]
    for role in ("baseline", "candidate"):
        sent = [s["requests"][role] for s in stages]
        assert all(x > 0 for x in sent) and sum(sent) == full["requests"], (role, sent, full["requests"])
    # and the ordinary comparison of the last stage is what the progressive run reports
    again = compare(load_run(tmp_path / "edge" / "baseline"), load_run(tmp_path / "edge" / "candidate"), Policy())
    assert again.verdict.value == edge["verdict"]


def test_bad_stages_and_confidence_are_input_errors(fleet, tmp_path, capsys):
    for extra in (["--stages", "0.5,0.25,1"], ["--stages", "0.5"], ["--confidence", "1.5"]):
        spec = tmp_path / "x.yaml"
        spec.write_text(yaml.safe_dump({"spec": {"baseline": {"endpoint": {"url": fleet.url("fp16")}},
                                                 "candidate": {"endpoint": {"url": fleet.url("copy")}}}}))
        rc = main(["evaluate", "--local", "-f", str(spec), "--output", str(tmp_path / "o"), "--progressive", *extra])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_spec_with_progressive_runs_progressively_without_the_flag(fleet, tmp_path):
    spec = {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "metadata": {"name": "staged"},
            "spec": {"baseline": {"endpoint": {"url": fleet.url("fp16")}},
                     "candidate": {"endpoint": {"url": fleet.url("copy")}},
                     "tasks": [{"name": t, "numFewshot": 0} for t in TASKS], "progressive": {"stages": [0.2, 1]}}}
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump(spec))
    rc = main(["evaluate", "--local", "--local-data", "-f", str(path), "--output", str(tmp_path / "staged")])
    comparison = json.loads((tmp_path / "staged" / "comparison.json").read_text())
    assert rc == 0 and comparison["verdict"] == "Ship"
    assert comparison["progressive"]["stages"] == [0.2, 1.0] and comparison["progressive"]["stage"] == 1
