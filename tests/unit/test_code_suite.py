"""The code suite: our own problems in lm-eval's humaneval/mbpp schemas, the derived task configs,
and the opt-in that guards them (CLI and spec)."""

import json
import sys

import pytest
import yaml
from pydantic import ValidationError

from quantgate.api.v1alpha1 import ModelEvaluationSpec
from quantgate.cli import main
from quantgate.lmeval.code_eval import allow_code_execution, build_predictions, pass_at_1, pass_at_k
from quantgate.lmeval.code_tasks import code_task_configs
from quantgate.lmeval.local_tasks import DATA_DIR, lm_eval_tasks_dir
from quantgate.lmeval.suites import resolve_tasks
from quantgate.lmeval.tasks import _generate_code


def _rows(rel):
    return [json.loads(line) for line in (DATA_DIR / rel).read_text().splitlines()]


def test_the_committed_data_is_what_the_generator_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(_generate_code, "DATA", tmp_path)
    _generate_code.main()
    for rel in ("humaneval/test.jsonl", "mbpp/test.jsonl", "mbpp/prompt.jsonl"):
        assert (tmp_path / rel).read_text() == (DATA_DIR / rel).read_text(), rel


def test_problems_are_ours_in_the_official_schemas_and_distinct():
    he, mb = _rows("humaneval/test.jsonl"), _rows("mbpp/test.jsonl")
    assert len(he) >= 60 and len(mb) >= 60
    assert all(set(r) == {"task_id", "prompt", "canonical_solution", "test", "entry_point"} for r in he)
    assert all(set(r) == {"task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list"}
               and len(r["test_list"]) == 3 for r in mb)
    names = [r["entry_point"] for r in he] + [r["code"].split("(")[0][4:] for r in mb]
    assert len(set(names)) == len(names)  # no function appears twice, across both tasks
    assert all(r["prompt"].startswith(f"def {r['entry_point']}(") for r in he)
    assert all(r.get("is_fewshot") is True for r in _rows("mbpp/prompt.jsonl"))


def test_every_canonical_solution_passes_and_every_wrong_one_fails_in_the_sandbox():
    he = _rows("humaneval/test.jsonl")
    mb = _rows("mbpp/test.jsonl")
    wrong_he, wrong_mb = _generate_code.completions("humaneval"), _generate_code.completions("mbpp")
    he_refs = [r["test"] + f"\ncheck({r['entry_point']})" for r in he]
    mb_refs = ["\n".join(r["test_list"]) for r in mb]
    with allow_code_execution():
        right = build_predictions([[r["canonical_solution"]] for r in he], he)
        wrong = build_predictions([[wrong_he[r["task_id"]][1]] for r in he], he)
        assert pass_at_k(he_refs, right, k=[1]) == {"pass@1": 1.0}
        assert pass_at_k(he_refs, wrong, k=[1]) == {"pass@1": 0.0}
        assert pass_at_1(mb_refs, [[r["code"]] for r in mb]) == 1.0
        assert pass_at_1(mb_refs, [[wrong_mb[r["task_id"]][1].replace("[DONE]", "")] for r in mb]) == 0.0


def test_task_configs_keep_the_official_prompts_and_swap_only_functions_and_data():
    official = lm_eval_tasks_dir()
    configs = code_task_configs(official, DATA_DIR)
    from lm_eval.tasks._yaml_loader import load_yaml

    for name, path in (("humaneval.yaml", "humaneval/humaneval.yaml"), ("mbpp.yaml", "mbpp/mbpp.yaml")):
        theirs, ours = load_yaml(official / path, resolve_func=False), configs[name]
        for key in ("task", "doc_to_text", "doc_to_target", "generation_kwargs", "num_fewshot", "output_type",
                    "unsafe_code", "metadata"):
            assert ours.get(key) == theirs.get(key), (name, key)
        assert ours["dataset_path"] == "json" and ours["dataset_name"] is None
    assert configs["humaneval.yaml"]["metric_list"][0]["metric"] == "quantgate.lmeval.code_eval.pass_at_k"
    assert configs["humaneval.yaml"]["filter_list"][0]["name"] == "create_test"
    assert configs["mbpp.yaml"]["metric_list"][0]["metric"] == "quantgate.lmeval.code_eval.pass_at_1"
    assert [s["task_id"] for s in configs["mbpp.yaml"]["fewshot_config"]["samples"]] == [1, 2, 3]


def test_loading_the_tasks_never_imports_lm_evals_code_eval_utils():
    from quantgate.lmeval.local_tasks import local_task_manager
    from quantgate.lmeval.offline import offline_environment

    offline_environment()
    loaded = local_task_manager().load(["humaneval", "mbpp"])
    assert sorted(loaded["tasks"]) == ["humaneval", "mbpp"]
    assert not [m for m in sys.modules if m.startswith(("lm_eval.tasks.humaneval", "lm_eval.tasks.mbpp"))]
    assert [t.name for t in resolve_tasks("code", None)] == ["humaneval", "mbpp"]
    assert [t.num_fewshot for t in resolve_tasks("code", None)] == [0, 3]


@pytest.mark.parametrize("argv, message", [
    (["--suite", "code"], "task humaneval runs model-written code; pass --allow-code-execution"),
    (["--tasks", "mbpp", "--local-data"], "task mbpp runs model-written code; pass --allow-code-execution"),
    (["--tasks", "humaneval", "--allow-code-execution"], "quantgate runs code only in its sandboxed tasks"),
    (["--tasks", "cruxeval_o", "--allow-code-execution"], "task cruxeval_o: quantgate runs code only"),
])
def test_the_cli_refuses_code_tasks_in_one_line(argv, message, tmp_path, capsys):
    # The endpoint is never contacted: the refusal comes before the preflight.
    rc = main(["run", "--endpoint", "http://127.0.0.1:9", "--output", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def _spec(**extra):
    return {"baseline": {"endpoint": {"url": "http://a"}}, "candidate": {"endpoint": {"url": "http://b"}}, **extra}


def test_the_spec_needs_allow_code_execution_for_code_tasks(tmp_path, capsys):
    with pytest.raises(ValidationError, match="allowCodeExecution: true"):
        ModelEvaluationSpec.model_validate(_spec(suite="code"))
    with pytest.raises(ValidationError, match="allowCodeExecution: true"):
        ModelEvaluationSpec.model_validate(_spec(suite="local", tasks=[{"name": "humaneval"}]))
    with pytest.raises(ValidationError, match="only on quantgate's own problems"):
        ModelEvaluationSpec.model_validate(_spec(tasks=[{"name": "mbpp"}], allowCodeExecution=True))
    ok = ModelEvaluationSpec.model_validate(_spec(suite="code", allowCodeExecution=True, profile="code-help"))
    assert ok.runs_code and not ModelEvaluationSpec.model_validate(_spec()).runs_code
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"kind": "ModelEvaluation", "metadata": {"name": "c"}, "spec": _spec(suite="code")}))
    assert main(["evaluate", "--local", "-f", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "allowCodeExecution: true" in err and len(err.strip().splitlines()) == 1


def test_the_runner_job_passes_the_opt_in_only_for_a_code_evaluation():
    from quantgate.k8s.endpoints import Resolved
    from quantgate.k8s.job import Evaluation, run_args

    model = Resolved("http://m", None, None, "m")
    code = ModelEvaluationSpec.model_validate(_spec(suite="code", allowCodeExecution=True))
    plain = ModelEvaluationSpec.model_validate(_spec(suite="local", allowCodeExecution=True))
    args = run_args(Evaluation("ns", "e", "u", 1, code), "candidate", model, "r")
    assert "--allow-code-execution" in args and args[args.index("--suite") + 1] == "code"
    assert "--allow-code-execution" not in run_args(Evaluation("ns", "e", "u", 1, plain), "candidate", model, "r")


def test_a_code_evaluations_pod_gives_no_token_to_the_containers_that_run_model_code():
    from quantgate.k8s import names
    from quantgate.k8s.code_job import SA_MOUNT
    from quantgate.k8s.endpoints import Resolved
    from quantgate.k8s.job import Evaluation, build_job
    from quantgate.k8s.settings import Settings

    secret = {"name": "key", "key": "token"}
    spec = ModelEvaluationSpec.model_validate({
        "baseline": {"endpoint": {"url": "http://a", "apiKeySecretRef": secret}},
        "candidate": {"endpoint": {"url": "http://b", "apiKeySecretRef": secret}},
        "suite": "code", "allowCodeExecution": True, "profile": "code-help"})
    model = Resolved("http://a", None, spec.baseline.endpoint.api_key_secret_ref, "a")
    job = build_job(Evaluation("ns", "coder", "uid-1", 3, spec), model, model, Settings())
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    evaluators, publishers = pod["initContainers"], pod["containers"]
    assert [c["name"] for c in evaluators] == ["baseline", "candidate"]
    assert [c["name"] for c in publishers] == ["publish-baseline", "publish-candidate"]
    for c in evaluators:
        assert "--publish-configmap" not in c["args"] and "--allow-code-execution" in c["args"]
        assert all(m["mountPath"] != SA_MOUNT for m in c["volumeMounts"])
        assert any(e["name"] == names.ENV_API_KEY for e in c["env"])
        assert {"name": "TMPDIR", "value": "/var/run/quantgate"} in c["env"]  # writable: root fs is read-only
    for c, role in zip(publishers, ("baseline", "candidate")):
        assert c["args"] == ["publish", "--run-dir", f"/var/run/quantgate/{role}", "--configmap",
                             f"ns/{names.results_name(job['metadata']['name'], role)}", "--role", role]
        assert {m["mountPath"]: m["readOnly"] for m in c["volumeMounts"]} == {"/var/run/quantgate": True, SA_MOUNT: True}
        assert all(e["name"] != names.ENV_API_KEY for e in c["env"])
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
    token = next(v for v in pod["volumes"] if "projected" in v)
    assert [next(iter(s)) for s in token["projected"]["sources"]] == ["serviceAccountToken", "configMap", "downwardAPI"]
    plain = ModelEvaluationSpec.model_validate(_spec(suite="local"))
    plain_pod = build_job(Evaluation("ns", "p", "u", 1, plain), model, model, Settings())["spec"]["template"]["spec"]
    assert "automountServiceAccountToken" not in plain_pod and "initContainers" not in plain_pod


def test_publish_refuses_bad_input_in_one_line(tmp_path, capsys):
    rc = main(["publish", "--run-dir", str(tmp_path), "--configmap", "no-slash", "--role", "candidate"])
    err = capsys.readouterr().err
    assert rc == 2 and "NAMESPACE/NAME" in err and len(err.strip().splitlines()) == 1
