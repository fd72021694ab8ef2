"""Comparability: runs whose lm-eval setup differs are refused (exit 2, one line naming the
difference) unless --allow-mismatch, which records a warning. The runs are lm-eval's own
output (examples/, written by lm-eval's EvaluationTracker); each test changes one field of the
candidate's results file the way a different lm-eval setup writes it."""

import json
import shutil
from pathlib import Path

import pytest

from quantgate.cli import main

EX = Path(__file__).resolve().parents[3] / "examples"


def _candidate(tmp_path: Path, change) -> Path:
    out = tmp_path / "cand"
    shutil.copytree(EX / "int4-g128", out)
    results = next(out.glob("*/results_*.json"))
    data = json.loads(results.read_text())
    change(data)
    results.write_text(json.dumps(data))
    return out


def _set(path: list, value):
    def change(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


CASES = [
    ("lm-eval version", _set(["lm_eval_version"], "0.4.9"), "lm-eval versions differ: 0.4.13 vs 0.4.9"),
    ("task version", _set(["versions", "arc_challenge"], 2.0), "task versions differ: arc_challenge 1.0 vs 2.0"),
    ("task config", _set(["configs", "hellaswag", "doc_to_text"], "{{query}} Answer:"),
     "task configs (prompts, metrics or generation settings) differ: hellaswag"),
    ("generation kwargs in the task", _set(["configs", "gsm8k", "generation_kwargs", "max_gen_toks"], 64),
     "task configs (prompts, metrics or generation settings) differ: gsm8k"),
    ("documents", _set(["task_hashes", "winogrande"], "0" * 64),
     "evaluated documents (lm-eval task hashes) differ: winogrande"),
    ("gen kwargs", _set(["config", "gen_kwargs"], {"temperature": 0.7}), "generation kwargs differ: null vs"),
    ("chat template", _set(["chat_template_sha"], "ab" * 32), "chat templates differ: none vs sha abababab"),
    ("system instruction", _set(["system_instruction_sha"], "cd" * 32),
     "system instructions differ: none vs sha cdcdcdcd"),
    ("shots", _set(["n-shot", "arc_challenge"], 25), "few-shot counts differ: arc_challenge 0 vs 25"),
    ("limits", _set(["config", "limit"], 50), "limit differs: none vs 50"),
]


@pytest.mark.parametrize("what,change,words", CASES, ids=[c[0] for c in CASES])
def test_a_difference_refuses_to_decide_in_one_line(tmp_path, capsys, what, change, words):
    cand = _candidate(tmp_path, change)
    rc = main(["compare", "--baseline", str(EX / "fp16"), "--candidate", str(cand)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err and "--allow-mismatch" in err, err


@pytest.mark.parametrize("what,change,words", CASES, ids=[c[0] for c in CASES])
def test_allow_mismatch_decides_and_records_the_warning(tmp_path, capsys, what, change, words):
    cand = _candidate(tmp_path, change)
    rc = main(["compare", "--baseline", str(EX / "fp16"), "--candidate", str(cand), "--allow-mismatch", "-o", "json"])
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert rc in (0, 1) and data["verdict"] in ("Ship", "Monitor", "ABTest", "Block")
    warnings = [r for r in data["reasons"] if r.startswith("warning:")]
    assert len(warnings) == 1 and words in warnings[0] and "--allow-mismatch" in warnings[0]
    assert words in err


def test_identical_setups_compare_without_warnings(capsys):
    rc = main(["compare", "--baseline", str(EX / "fp16"), "--candidate", str(EX / "int4-g128"), "-o", "json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and not [r for r in data["reasons"] if r.startswith("warning:")]


def test_the_setup_survives_the_compact_form_the_operator_stores():
    from quantgate.decision.comparability import differences
    from quantgate.core.runs import RunResults
    from quantgate.lmeval.results import load_run

    run = load_run(EX / "fp16")
    back = RunResults.from_compact(json.loads(json.dumps(run.to_compact())))
    assert back.setup == run.setup and run.setup["lmEval"] == "0.4.13"
    changed = dict(back.setup, lmEval="0.4.9")
    assert differences(run.setup, changed) == ["lm-eval versions differ: 0.4.13 vs 0.4.9"]


def test_function_addresses_in_configs_do_not_count_as_differences():
    """lm-eval writes a task's Python functions as "<function f at 0x7f…>": a new process, a new address."""
    from quantgate.decision.comparability import config_hash

    a = {"task": "winogrande", "doc_to_text": "<function doc_to_text at 0x7fb659f30180>"}
    b = {"task": "winogrande", "doc_to_text": "<function doc_to_text at 0x7f3b48958180>"}
    c = {"task": "winogrande", "doc_to_text": "<function other_doc_to_text at 0x7f3b48958180>"}
    assert config_hash(a) == config_hash(b) != config_hash(c)
