"""`quantgate evaluate --local` end to end on the simulator, full local suite.

The same two runs prove that lm-eval scores the simulator exactly as planted,
for every task and filter of the local suite (aggregates and every sample), and
that the decision engine sees exactly the planted answer flips.
"""

import json
from pathlib import Path

import pytest
import yaml

from quantgate.cli import main
from quantgate.simulate import SimulatedFleet, load_fleet
from quantgate.simulate.index import ItemIndex, unit_of
from quantgate.simulate.model import SimulatedModel
from quantgate.simulate.tokenizer import default_tokenizer

FLEET = Path(__file__).resolve().parents[2] / "examples" / "simulate" / "demo-fleet.yaml"
# Every metric and filter of the local suite, per task.
METRICS = {
    "arc_challenge": ["acc,none", "acc_norm,none"],
    "hellaswag": ["acc,none", "acc_norm,none"],
    "winogrande": ["acc,none"],
    "truthfulqa_mc2": ["acc,none"],
    "gsm8k": ["exact_match,strict-match", "exact_match,flexible-extract"],
}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    config = load_fleet(FLEET)
    with SimulatedFleet(config, variants=["fp16", "int4-g128"]) as fleet:
        spec = {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation",
                "metadata": {"name": "llama-int4"},
                "spec": {"baseline": {"endpoint": {"url": fleet.url("fp16")}, "size": "16.1Gi"},
                         "candidate": {"endpoint": {"url": fleet.url("int4-g128")}, "size": "5.4Gi"},
                         # every task of the local suite at 1 shot (0 for truthfulqa_mc2): the planted
                         # outcomes do not depend on shots, and short prompts keep the test quick.
                         "tasks": [{"name": t, "numFewshot": 0 if t == "truthfulqa_mc2" else 1}
                                   for t in ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande",
                                             "gsm8k")],
                         "profile": "general"}}
        path = out / "evaluation.yaml"
        path.write_text(yaml.safe_dump(spec))
        rc = main(["evaluate", "--local", "--local-data", "-f", str(path), "--output", str(out / "result")])
    planted = {name: SimulatedModel(config, config.variant(name), ItemIndex.load(), default_tokenizer()).correct
               for name in ("fp16", "int4-g128")}
    return rc, out / "result", planted


def _results(run_dir: Path) -> dict:
    return json.loads(next(run_dir.glob("results_*.json")).read_text())


def test_evaluate_local_writes_runs_comparison_and_report(evaluated, capsys):
    rc, out, _ = evaluated
    assert rc == 0  # int4-g128 is Monitor under the general rule: promotable
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["verdict"] == "Monitor" and comparison["promotable"] is True
    assert 1 <= comparison["averageDrop"] <= 3
    assert {t["task"] for t in comparison["tasks"]} == {"arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2",
                                                        "winogrande", "gsm8k"}
    assert "<html" in (out / "report.html").read_text().lower()
    for role in ("baseline", "candidate"):
        assert json.loads((out / role / "manifest.json").read_text())["complete"] is True


@pytest.mark.parametrize("role,variant", [("baseline", "fp16"), ("candidate", "int4-g128")])
def test_planted_accuracy_is_reproduced_exactly_for_every_task_and_filter(evaluated, role, variant):
    _, out, planted = evaluated
    correct = planted[variant]
    results = _results(out / role)["results"]
    n_items = {unit: 0 for unit in correct}
    index = ItemIndex.load()
    for unit, items in index.items.items():
        n_items[unit] = len(items)
    for task, metrics in METRICS.items():
        for metric in metrics:
            assert results[task][metric] == pytest.approx(len(correct[task]) / n_items[task], abs=1e-12), \
                (task, metric)
    assert results["mmlu"]["acc,none"] == pytest.approx(len(correct["mmlu"]) / n_items["mmlu"], abs=1e-12)

    checked = 0
    for path in (out / role).glob("samples_*.jsonl"):
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            task = path.name[len("samples_"):].rsplit("_", 1)[0]
            unit = unit_of(task)
            item = f"{task}/{sample['doc_id']}" if unit == "mmlu" else str(sample["doc_id"])
            expected = item in correct[unit]
            if task == "gsm8k":
                got = sample["exact_match"] == 1.0
            elif task == "truthfulqa_mc2":
                got = sample["acc"] >= 0.5
            else:
                got = sample["acc"] == 1.0 and sample.get("acc_norm", sample["acc"]) == 1.0
            assert got == expected, (task, sample["doc_id"], sample.get("filter"))
            checked += 1
    local_units = [*METRICS, "mmlu"]  # the index also knows the code suite's units, not run here
    assert checked == sum(n_items[u] for u in local_units) + n_items["gsm8k"]  # gsm8k: one record per filter


def test_answer_flips_are_the_planted_ones(evaluated):
    _, out, planted = evaluated
    comparison = json.loads((out / "comparison.json").read_text())
    ref, cand = planted["fp16"], planted["int4-g128"]
    for task in comparison["tasks"]:
        unit = task["task"]
        assert task["flips"]["correctToIncorrect"] == len(ref[unit] - cand[unit]), unit
        assert task["flips"]["incorrectToCorrect"] == len(cand[unit] - ref[unit]), unit
    gsm8k = next(t for t in comparison["tasks"] if t["task"] == "gsm8k")
    assert gsm8k["flips"]["rate"] >= 0.12  # the demo plants 12% flips on gsm8k for int4-g128


def test_a_failing_run_fails_the_evaluation_with_its_status_and_no_verdict(tmp_path, capsys):
    with SimulatedFleet({"variants": [{"name": "up"}, {"name": "down", "refuseConnections": True}]}) as fleet:
        path = tmp_path / "evaluation.yaml"
        path.write_text(yaml.safe_dump({"kind": "ModelEvaluation", "metadata": {"name": "x"}, "spec": {
            "baseline": {"endpoint": {"url": fleet.url("up")}}, "candidate": {"endpoint": {"url": fleet.url("down")}},
            "suite": "local"}}))
        rc = main(["evaluate", "--local", "-f", str(path), "--output", str(tmp_path / "out")])
    assert rc == 10
    assert "candidate run failed" in capsys.readouterr().err
    assert not (tmp_path / "out" / "comparison.json").exists()


def test_cluster_only_sources_are_refused_locally(tmp_path, capsys):
    path = tmp_path / "evaluation.yaml"
    path.write_text(yaml.safe_dump({"kind": "ModelEvaluation", "metadata": {"name": "x"}, "spec": {
        "baseline": {"inferenceServiceRef": {"name": "llama"}}, "candidate": {"endpoint": {"url": "http://x"}}}}))
    assert main(["evaluate", "--local", "-f", str(path)]) == 2
    assert "spec.baseline.endpoint.url" in capsys.readouterr().err


def test_evaluate_local_runs_the_spec_as_the_job_would_its_limit_and_local_data_included(tmp_path, monkeypatch):
    import quantgate.lmeval.parallel as parallel

    seen = []

    class Failed:
        failed, returncode, label = True, 2, "baseline"

    def capture(jobs):
        seen.extend(jobs)
        return [Failed()]

    monkeypatch.setattr(parallel, "run_all", capture)
    spec = {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "metadata": {"name": "lim"},
            "spec": {"baseline": {"endpoint": {"url": "http://127.0.0.1:9"}},
                     "candidate": {"endpoint": {"url": "http://127.0.0.1:9"}},
                     "suite": "local", "tasks": [{"name": "gsm8k"}], "limit": 2}}
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["evaluate", "--local", "-f", str(path), "--output", str(tmp_path / "out")]) == 2
    args = seen[0].args
    assert args[args.index("--limit") + 1] == "2" and "--local-data" in args
