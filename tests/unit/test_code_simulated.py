"""The code-help profile end to end on simulated code models: `quantgate evaluate --local`.

The simulator answers each problem with its canonical solution or a plausible wrong one, as
planted (examples/simulate/code-fleet.yaml); lm-eval scores the answers by running them in the
sandbox. pass@1 per task and every sample must be exactly the planted outcome, the flips the
planted flips, and the verdicts follow: int8 (no drop) Ship, int4 (humaneval -7.5%) Block.
"""

import json
from pathlib import Path

import pytest
import yaml

from quantgate.cli import main
from quantgate.simulate import SimulatedFleet, load_fleet
from quantgate.simulate.index import ItemIndex
from quantgate.simulate.model import SimulatedModel
from quantgate.simulate.tokenizer import default_tokenizer

pytestmark = pytest.mark.slow
FLEET = Path(__file__).resolve().parents[2] / "examples" / "simulate" / "code-fleet.yaml"
METRIC = {"humaneval": "pass@1,create_test", "mbpp": "pass_at_1,none"}


def _evaluate(tmp_path_factory, candidate: str):
    out = tmp_path_factory.mktemp(f"code-{candidate}")
    config = load_fleet(FLEET)
    with SimulatedFleet(config, variants=["fp16", candidate]) as fleet:
        spec = {"kind": "ModelEvaluation", "metadata": {"name": f"coder-{candidate}"},
                "spec": {"baseline": {"endpoint": {"url": fleet.url("fp16")}},
                         "candidate": {"endpoint": {"url": fleet.url(candidate)}},
                         "suite": "code", "profile": "code-help", "allowCodeExecution": True}}
        path = out / "evaluation.yaml"
        path.write_text(yaml.safe_dump(spec))
        rc = main(["evaluate", "--local", "-f", str(path), "--output", str(out / "result")])
    planted = {name: SimulatedModel(config, config.variant(name), ItemIndex.load(), default_tokenizer()).correct
               for name in ("fp16", candidate)}
    return rc, out / "result", planted


@pytest.fixture(scope="module")
def int4(tmp_path_factory):
    return _evaluate(tmp_path_factory, "int4")


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    return _evaluate(tmp_path_factory, "int8")


def _check_planted(out: Path, role: str, correct: dict) -> None:
    results = json.loads(next((out / role).glob("results_*.json")).read_text())["results"]
    for task, metric in METRIC.items():
        assert results[task][metric] == len(correct[task]) / 64, (role, task)
        path = next((out / role).glob(f"samples_{task}_*.jsonl"))
        samples = [json.loads(line) for line in path.read_text().splitlines()]
        passed = {str(s["doc_id"]) for s in samples if s[metric.split(",")[0]] == 1.0}
        assert len(samples) == 64 and passed == correct[task], (role, task)


def test_int4_is_blocked_by_code_help_with_the_planted_pass_rates_and_flips(int4):
    rc, out, planted = int4
    assert rc == 1
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["verdict"] == "Block" and comparison["promotable"] is False
    assert any("humaneval: drop 7.50% >= 2% limit of profile code-help" in r for r in comparison["reasons"])
    _check_planted(out, "baseline", planted["fp16"])
    _check_planted(out, "candidate", planted["int4"])
    for task in comparison["tasks"]:
        unit = task["task"]
        ref, cand = planted["fp16"][unit], planted["int4"][unit]
        assert task["flips"]["correctToIncorrect"] == len(ref - cand), unit
        assert task["flips"]["incorrectToCorrect"] == len(cand - ref), unit
    humaneval = next(t for t in comparison["tasks"] if t["task"] == "humaneval")
    # flipRate 0.125 of 64 is 8 flips; a net loss of 3 needs an odd count, so the planter makes it 9: 6 lost, 3 won
    assert (humaneval["flips"]["correctToIncorrect"], humaneval["flips"]["incorrectToCorrect"]) == (6, 3)
    for role in ("baseline", "candidate"):
        manifest = json.loads((out / role / "manifest.json").read_text())
        assert manifest["complete"] is True and manifest["codeExecution"]["sandbox"] in ("root", "userns", "none")


def test_int8_ships_under_code_help_despite_its_flips(int8):
    rc, out, planted = int8
    assert rc == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["verdict"] == "Ship" and comparison["promotable"] is True
    _check_planted(out, "candidate", planted["int8"])
    humaneval = next(t for t in comparison["tasks"] if t["task"] == "humaneval")
    assert humaneval["flips"]["correctToIncorrect"] == humaneval["flips"]["incorrectToCorrect"] == 2
    report = (out / "report.html").read_text()
    assert "<html" in report.lower() and "humaneval" in report and "pass@1,create_test" in report
