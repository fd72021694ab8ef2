"""One run plan per spec: the operator's Job, `evaluate --local`, the baseline cache key and the
trust check all derive what is evaluated from quantgate.lmeval.plan.run_plan, and the runner
records exactly what that plan says."""

import pytest
import yaml

from quantgate.api.v1alpha1 import ModelEvaluationSpec
from quantgate.cli import build_parser, main
from quantgate.commands.run import config_from_args
from quantgate.k8s import cache, trust
from quantgate.k8s.endpoints import Resolved
from quantgate.k8s.job import Evaluation, build_job
from quantgate.k8s.settings import Settings
from quantgate.lmeval.plan import effective_limit, run_plan

URL = "http://127.0.0.1:9"
SPECS = {
    "default suite": {},
    "local suite, global limit": {"suite": "local", "limit": 7},
    "explicit tasks, shots and limits": {"tasks": [{"name": "gsm8k", "numFewshot": 3, "limit": 20},
                                                   {"name": "hellaswag"}], "limit": 5},
    "local tasks": {"suite": "local", "tasks": [{"name": "arc_challenge", "numFewshot": 0}]},
    "tiny suite": {"suite": "tiny"},
    "generation settings": {"suite": "local", "genKwargs": {"repeat_penalty": 1.0, "do_sample": False, "top_k": 1}},
}


def _spec(extra: dict) -> ModelEvaluationSpec:
    return ModelEvaluationSpec.model_validate({"baseline": {"endpoint": {"url": URL, "model": "a"}},
                                               "candidate": {"endpoint": {"url": URL, "model": "b"}}, **extra})


def _recorded(runner_args: list[str]) -> tuple:
    """What the runner would record for these arguments: (name, shots, limit) per task."""
    args = build_parser().parse_args(runner_args)
    config = config_from_args(args)
    from quantgate.lmeval.suites import resolve_tasks

    return tuple((t.name, t.num_fewshot, effective_limit(t, config.limit))
                 for t in resolve_tasks(config.suite, config.tasks)), config.uses_local_data, config.gen_kwargs


@pytest.mark.parametrize("case", SPECS)
def test_the_job_runs_what_the_trust_check_expects_and_the_cache_key_names(case):
    spec = _spec(SPECS[case])
    job = build_job(Evaluation("ns", "ev", "uid", 1, spec), Resolved(URL, "a", None, "endpoint:a"),
                    Resolved(URL, "b", None, "endpoint:b"), Settings(runner_image="img:1"))
    for container in job["spec"]["template"]["spec"]["containers"]:
        tasks, local, gen_kwargs = _recorded(container["args"])
        assert gen_kwargs == spec.gen_kwargs  # the runner reads back exactly the spec's settings, typed
        assert tasks == trust.expected(spec, None).tasks
        assert local == (run_plan(spec).local_data or spec.effective_suite == "local")
        key = run_plan(spec).key_document()  # the cache key names the same tasks, shots and limits
        assert tuple((t["name"], t.get("numFewshot"), t.get("limit") or key["limit"]) for t in key["tasks"]) == tasks


@pytest.mark.parametrize("case", SPECS)
def test_evaluate_local_passes_the_same_plan_as_the_job(case, tmp_path, monkeypatch):
    import quantgate.lmeval.parallel as parallel

    seen = []

    class Failed:
        failed, returncode, label = True, 2, "baseline"

    def capture(jobs):
        seen.extend(jobs)
        return [Failed()]

    monkeypatch.setattr(parallel, "run_all", capture)
    doc = {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "metadata": {"name": "p"},
           "spec": {"baseline": {"endpoint": {"url": URL, "model": "a"}},
                    "candidate": {"endpoint": {"url": URL, "model": "b"}}, **SPECS[case]}}
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["evaluate", "--local", "-f", str(path), "--output", str(tmp_path / "out")]) == 2
    spec = _spec(SPECS[case])
    job = build_job(Evaluation("ns", "ev", "uid", 1, spec), Resolved(URL, "a", None, "endpoint:a"),
                    Resolved(URL, "b", None, "endpoint:b"), Settings(runner_image="img:1"))
    job_args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    for run in seen:
        assert _recorded(["run", *run.args]) == _recorded(job_args)


def test_a_global_limit_changes_the_cache_key_and_a_task_limit_wins_over_it():
    plain, limited = _spec({"suite": "local"}), _spec({"suite": "local", "limit": 7})
    assert cache.baseline_key("id", "m", plain) != cache.baseline_key("id", "m", limited)
    spec = _spec({"tasks": [{"name": "gsm8k", "limit": 20}, {"name": "hellaswag"}], "limit": 5})
    assert run_plan(spec).task_limits() == (("gsm8k", None, 20), ("hellaswag", None, 5))
    assert run_plan(spec, limit=3).task_limits() == (("gsm8k", None, 20), ("hellaswag", None, 3))


def test_generation_settings_are_part_of_the_baseline_key_and_refused_for_the_llama_cpp_engine():
    import pydantic

    plain = _spec({"suite": "local"})
    greedy = _spec({"suite": "local", "genKwargs": {"repeat_penalty": 1.0}})
    assert cache.baseline_key("id", "m", plain) != cache.baseline_key("id", "m", greedy)
    assert "genKwargs" not in run_plan(plain).key_document()  # keys of plans without settings are unchanged
    gguf = {"llamaCpp": {"modelPath": "/m/a.gguf"}}
    with pytest.raises(pydantic.ValidationError, match="decodes greedily"):
        ModelEvaluationSpec.model_validate({"baseline": gguf, "candidate": gguf, "genKwargs": {"top_k": 1}})
    for bad in ({"top_k": [1]}, {"stop": "a,b"}, {"bad key": 1}):  # scalars only; what --gen-kwargs can carry
        with pytest.raises(pydantic.ValidationError):
            _spec({"genKwargs": bad})
