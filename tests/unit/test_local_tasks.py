"""The local suite's data and task configs: our own items, lm-eval's official configs."""

import json

import pytest

from quantgate.api.v1alpha1 import TaskSpec
from quantgate.errors import InputError
from quantgate.lmeval.local_tasks import DATA_DIR, LOCAL_TASKS, MMLU_SUBJECTS, local_include_dir
from quantgate.lmeval.suites import LEADERBOARD_SHOTS, resolve_tasks


def _rows(rel):
    return [json.loads(line) for line in (DATA_DIR / rel).read_text().splitlines()]


def test_every_split_has_items_in_the_official_schema():
    gsm = _rows("gsm8k/test.jsonl")
    assert len(gsm) >= 200 and all("\n#### " in r["answer"] for r in gsm)
    arc = _rows("arc_challenge/test.jsonl")
    assert len(arc) >= 200 and all(r["answerKey"] in r["choices"]["label"] for r in arc)
    hs = _rows("hellaswag/validation.jsonl")
    assert len(hs) >= 200 and all(isinstance(r["label"], str) and len(r["endings"]) == 4 for r in hs)
    assert len(_rows("hellaswag/train.jsonl")) >= 11  # 10-shot draws n+1
    wg = _rows("winogrande/validation.jsonl")
    assert len(wg) >= 200 and all(r["answer"] in ("1", "2") and "_" in r["sentence"] for r in wg)
    assert len(_rows("winogrande/train.jsonl")) >= 6
    tq = _rows("truthfulqa_mc2/validation.jsonl")
    assert len(tq) >= 100 and all(1 in r["mc2_targets"]["labels"] for r in tq)
    for subject in MMLU_SUBJECTS:
        test = _rows(f"mmlu/{subject}/test.jsonl")
        assert len(test) >= 20 and all(len(r["choices"]) == 4 and r["answer"] in range(4) for r in test)
        assert len(_rows(f"mmlu/{subject}/dev.jsonl")) >= 5


def test_items_are_distinct_and_never_contain_a_blank_line():
    for path in DATA_DIR.rglob("*.jsonl"):
        text = path.read_text()
        assert "\\n\\n" not in text, path  # the simulator keys requests on the text after the last blank line
        lines = text.splitlines()
        assert len(set(lines)) == len(lines), path


def test_generated_yamls_include_the_installed_official_configs(tmp_path):
    import lm_eval.tasks
    import yaml

    include_dir = local_include_dir(cache_root=tmp_path)
    official = str(lm_eval.tasks.__file__).rsplit("/", 1)[0]
    gsm = yaml.safe_load((include_dir / "gsm8k.yaml").read_text())
    assert gsm["include"] == f"{official}/gsm8k/gsm8k.yaml"
    assert gsm["dataset_path"] == "json" and gsm["dataset_name"] is None
    assert gsm["dataset_kwargs"]["data_files"]["test"] == str(DATA_DIR / "gsm8k/test.jsonl")
    assert local_include_dir(cache_root=tmp_path) == include_dir  # cached


def test_task_manager_loads_the_local_suite_with_groups_as_lm_eval_defines_them():
    from quantgate.lmeval.local_tasks import local_task_manager
    from quantgate.lmeval.offline import offline_environment

    offline_environment()
    loaded = local_task_manager().load(list(LOCAL_TASKS))
    assert loaded["group_map"]["mmlu"] == ["mmlu_stem", "mmlu_other", "mmlu_social_sciences", "mmlu_humanities"]
    assert sorted(loaded["group_map"]["mmlu_stem"]) == ["mmlu_astronomy", "mmlu_elementary_mathematics"]
    gsm8k = loaded["tasks"]["gsm8k"]
    assert [f.name for f in gsm8k._filters] == ["strict-match", "flexible-extract"]
    assert len(gsm8k.eval_docs) == 250


def test_suites_resolve_with_their_standard_shots():
    lb = resolve_tasks("leaderboard", None)
    assert {t.name: t.num_fewshot for t in lb} == LEADERBOARD_SHOTS
    assert [t.name for t in resolve_tasks(None, None)] == [t.name for t in lb]
    assert {t.name for t in resolve_tasks("local", None)} == set(LOCAL_TASKS)
    tiny = {t.name: t.num_fewshot for t in resolve_tasks("tiny", None)}
    assert tiny["tinyArc"] == 25 and tiny["tinyGSM8k"] == 5 and tiny["tinyMMLU"] == 0
    assert resolve_tasks(None, [TaskSpec(name="gsm8k", limit=5)])[0].limit == 5


@pytest.mark.parametrize("suite,tasks,message", [
    ("nope", None, "unknown suite"),
    ("local", [TaskSpec(name="gsm8k")], "either a suite or"),
    (None, [TaskSpec(name="tinyGSM8k", limit=10)], "must run in full"),
    (None, [TaskSpec(name="gsm8k"), TaskSpec(name="gsm8k")], "listed twice"),
])
def test_bad_suites_are_input_errors(suite, tasks, message):
    with pytest.raises(InputError, match=message):
        resolve_tasks(suite, tasks)
