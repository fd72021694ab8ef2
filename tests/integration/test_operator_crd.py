"""The generated CRD on the real apiserver: valid CRs pass, invalid ones are rejected by
the schema and by the CEL rules with the apiserver's own message."""

import json

import pytest
import yaml

from operator_harness import evaluation, install_crds

ISVC = {"inferenceServiceRef": {"name": "m"}}


@pytest.fixture(scope="module")
def crds(cluster):
    install_crds(cluster)
    return cluster


def _apply(cluster, namespace, obj):
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=False)


def test_valid_evaluation_is_accepted_with_defaults(crds, namespace):
    result = _apply(crds, namespace, evaluation("ok", ISVC, ISVC, tasks=[{"name": "gsm8k", "limit": 20}],
                                                profile="math-tutoring"))
    assert result.returncode == 0, result.stderr
    obj = yaml.safe_load(crds.kubectl("get", "meval", "ok", "-n", namespace, "-o", "yaml").stdout)
    spec = obj["spec"]
    assert spec["dropMode"] == "relative" and spec["aggregate"] == "relativeDropOfMean"
    assert spec["thresholds"] == {"ship": 1.0, "monitor": 3.0, "abTest": 5.0} or spec["thresholds"] == {
        "ship": 1, "monitor": 3, "abTest": 5}
    assert spec["runner"]["backoffLimit"] == 1


@pytest.mark.parametrize("spec, message", [
    # schema: enum, type, range, required
    ({"baseline": ISVC, "candidate": ISVC, "profile": "poetry"}, 'Unsupported value: "poetry"'),
    ({"baseline": ISVC, "candidate": ISVC, "runner": {"backoffLimit": 99}}, "should be less than or equal to 10"),
    ({"baseline": ISVC}, "spec.candidate: Required value"),
    ({"baseline": ISVC, "candidate": {"endpoint": {"url": "ftp://x"}}}, "should match '^https?://'"),
    # CEL
    ({"baseline": ISVC, "candidate": {}}, "a model needs exactly one of inferenceServiceRef, endpoint, vllm"),
    ({"baseline": {**ISVC, "endpoint": {"url": "http://x"}}, "candidate": ISVC},
     "a baseline needs exactly one of inferenceServiceRef, endpoint, vllm, llamaCpp, or resultsFrom alone"),
    ({"baseline": {**ISVC, "resultsFrom": "other"}, "candidate": ISVC},
     "a baseline needs exactly one of inferenceServiceRef, endpoint, vllm, llamaCpp, or resultsFrom alone"),
    ({"baseline": ISVC, "candidate": ISVC, "thresholds": {"ship": 4, "monitor": 3}},
     "thresholds must satisfy ship <= monitor <= abTest"),
    ({"baseline": ISVC, "candidate": ISVC, "suite": "tiny", "tasks": [{"name": "gsm8k"}]},
     "give either suite or tasks, not both"),
    ({"baseline": ISVC, "candidate": ISVC, "tasks": [{"name": "hellaswag"}], "profile": "math-tutoring"},
     "profile math-tutoring limits gsm8k"),
    ({"baseline": ISVC, "candidate": ISVC, "tasks": [{"name": "hellaswag"}], "taskLimits": {"gsm8k": 2}},
     "taskLimits may only name tasks the evaluation runs"),
    ({"baseline": ISVC, "candidate": ISVC, "taskLimits": {"humaneval": 2}},
     "taskLimits may only name tasks the evaluation runs"),
    ({"baseline": ISVC, "candidate": ISVC, "tasks": [{"name": "tinyGSM8k", "limit": 5}]},
     "tinyBenchmarks tasks are already subsampled"),
    # code tasks: only with the opt-in, only quantgate's own (sandboxed) versions
    ({"baseline": ISVC, "candidate": ISVC, "suite": "code", "profile": "code-help"},
     "code tasks (suite code, humaneval, mbpp) run model-written code: set allowCodeExecution: true"),
    ({"baseline": ISVC, "candidate": ISVC, "suite": "local", "tasks": [{"name": "mbpp"}]},
     "code tasks (suite code, humaneval, mbpp) run model-written code: set allowCodeExecution: true"),
    ({"baseline": ISVC, "candidate": ISVC, "tasks": [{"name": "humaneval"}], "allowCodeExecution": True},
     "humaneval and mbpp run only on quantgate's own problems"),
    ({"baseline": ISVC, "candidate": ISVC, "suite": "code", "allowCodeExecution": True, "taskLimits": {"gsm8k": 2}},
     "taskLimits may only name tasks the evaluation runs"),
    # progressive evaluation
    ({"baseline": ISVC, "candidate": ISVC, "progressive": {"stages": [0.5, 0.25, 1]}},
     "progressive.stages must be strictly increasing"),
    ({"baseline": ISVC, "candidate": ISVC, "progressive": {"stages": [0.5, 0.5, 1]}},
     "progressive.stages must be strictly increasing"),
    ({"baseline": ISVC, "candidate": ISVC, "progressive": {"stages": [0.1, 0.5]}}, "progressive.stages must end at 1"),
    ({"baseline": ISVC, "candidate": ISVC, "progressive": {"stages": [0, 1]}}, "progressive.stages must lie in (0, 1]"),
    ({"baseline": ISVC, "candidate": ISVC, "progressive": {"confidence": 0.5}}, "should be greater than 0.5"),
    ({"baseline": ISVC, "candidate": ISVC, "progressive": {"confidence": 1}}, "should be less than 1"),
    ({"baseline": ISVC, "candidate": ISVC, "progressive": {}, "limit": 5},
     "a progressive evaluation runs stages of every task's documents: remove limit"),
    ({"baseline": ISVC, "candidate": ISVC, "progressive": {}, "tasks": [{"name": "gsm8k", "limit": 5}]},
     "a progressive evaluation runs stages of every task's documents: remove limit"),
    ({"baseline": ISVC, "candidate": ISVC, "progressive": {}, "runner": {"parallelism": 2}},
     "a progressive evaluation runs each stage as one runner pod"),
    ({"baseline": {"resultsFrom": "other"}, "candidate": ISVC, "progressive": {}},
     "a progressive evaluation runs its baseline stage by stage"),
])
def test_invalid_evaluations_are_rejected(crds, namespace, spec, message):
    obj = {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "metadata": {"name": "bad"},
           "spec": spec}
    result = _apply(crds, namespace, obj)
    assert result.returncode != 0, "apiserver accepted an invalid ModelEvaluation"
    assert message in result.stderr, result.stderr


def test_tiny_task_counts_for_its_benchmark(crds, namespace):
    ok = evaluation("tiny", ISVC, ISVC, tasks=[{"name": "tinyGSM8k"}], taskLimits={"gsm8k": 2},
                    profile="math-tutoring")
    result = _apply(crds, namespace, ok)
    assert result.returncode == 0, result.stderr


def test_code_suite_with_the_opt_in_is_accepted_for_code_help(crds, namespace):
    ok = evaluation("coder", ISVC, ISVC, suite="code", allowCodeExecution=True, profile="code-help",
                    taskLimits={"humaneval": 1, "mbpp": 3})
    result = _apply(crds, namespace, ok)
    assert result.returncode == 0, result.stderr


def test_local_full_suite_is_accepted_alone_and_with_tasks(crds, namespace):
    for name, extra in (("full", {}), ("full-tasks", {"tasks": [{"name": "gsm8k", "numFewshot": 0}]})):
        result = _apply(crds, namespace, evaluation(name, ISVC, ISVC, suite="local-full", **extra))
        assert result.returncode == 0, result.stderr
    refused = _apply(crds, namespace, evaluation("tiny-tasks", ISVC, ISVC, suite="tiny", tasks=[{"name": "gsm8k"}]))
    assert refused.returncode != 0 and "give either suite or tasks" in refused.stderr


def test_gen_kwargs_are_stored_with_their_scalar_types(crds, namespace):
    kwargs = {"repeat_penalty": 1.0, "top_k": 1, "do_sample": False, "note": "greedy"}
    result = _apply(crds, namespace, evaluation("gen", ISVC, ISVC, suite="local", genKwargs=kwargs))
    assert result.returncode == 0, result.stderr
    stored = json.loads(crds.kubectl("get", "modelevaluation", "gen", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["genKwargs"] == kwargs


def test_printer_columns(crds, namespace):
    _apply(crds, namespace, evaluation("cols", ISVC, ISVC))
    header = crds.kubectl("get", "modelevaluations", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "BASELINE", "CANDIDATE", "PHASE", "VERDICT", "AVG", "DROP", "AGE"]


def test_progressive_is_off_by_default_and_takes_its_defaults(crds, namespace):
    assert _apply(crds, namespace, evaluation("plain", ISVC, ISVC)).returncode == 0
    plain = yaml.safe_load(crds.kubectl("get", "meval", "plain", "-n", namespace, "-o", "yaml").stdout)
    assert "progressive" not in plain["spec"]
    result = _apply(crds, namespace, evaluation("staged", ISVC, ISVC, progressive={}))
    assert result.returncode == 0, result.stderr
    staged = yaml.safe_load(crds.kubectl("get", "meval", "staged", "-n", namespace, "-o", "yaml").stdout)
    assert staged["spec"]["progressive"] == {"stages": [0.1, 0.25, 0.5, 1], "confidence": 0.95} or \
        staged["spec"]["progressive"] == {"stages": [0.1, 0.25, 0.5, 1.0], "confidence": 0.95}
    ok = _apply(crds, namespace, evaluation("two", ISVC, ISVC, progressive={"stages": [0.3, 1], "confidence": 0.9}))
    assert ok.returncode == 0, ok.stderr
