"""`quantgate compare` end to end on the example result sets: outputs, exit codes, errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from quantgate.cli import main

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures" / "lmeval" / "runs"
DESIGN_KEYS = {"verdict", "promotable", "profile", "aggregate", "dropMode", "averageDrop", "decisive", "reasons", "tasks"}
TASK_KEYS = {"task", "metric", "baseline", "candidate", "drop", "limit", "passed", "n", "ci95", "flips"}
# issue 15 adds these beside the DESIGN keys: the minimum detectable drop, and (when the task
# leaves the verdict undecided) the documents that would decide it
SIGNIFICANCE_KEYS = {"minDetectableDrop", "documentsNeeded"}


def compare(capsys, *extra, baseline=EX / "fp16", candidate=EX / "int4-g128"):
    rc = main(["compare", "--baseline", str(baseline), "--candidate", str(candidate), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_table_is_promotable_with_exit_0(capsys):
    rc, out, err = compare(capsys)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["task", "metric", "baseline", "candidate", "drop", "%", "limit", "%", "95%", "CI",
                                "flips", "c>i/i>c", "McNemar", "MDD", "%", "n", "choice", "KLD", "top-1", "pass"]
    gsm = next(line for line in lines if line.startswith("gsm8k"))
    assert gsm.split()[:5] == ["gsm8k", "exact_match,strict-match", "0.5400", "0.5100", "5.56"]
    assert "verdict: Monitor (promotable)" in out
    assert "average drop 2.20% (relativeDropOfMean): Monitor, since 1 <= 2.20 <= 3 (general bounds)" in out


def test_json_has_exactly_the_design_keys_and_exit_1_when_blocked(capsys):
    rc, out, _ = compare(capsys, "--profile", "math-tutoring", "-o", "json")
    assert rc == 1
    data = json.loads(out)
    assert set(data) == DESIGN_KEYS
    assert data["verdict"] == "Block" and data["promotable"] is False and data["dropMode"] == "relative"
    gsm = data["tasks"][0]
    assert set(gsm) == TASK_KEYS | SIGNIFICANCE_KEYS and gsm["limit"] == 2.0 and gsm["passed"] is False
    assert set(gsm["flips"]) == {"correctToIncorrect", "incorrectToCorrect", "rate", "mcnemarP"}
    assert gsm["flips"]["mcnemarP"] == 0.0312  # 6 correct→incorrect, 0 back: 2 * 0.5**6
    assert data["reasons"][0] == "gsm8k: drop 5.56% >= 2% limit of profile math-tutoring"


def test_json_without_samples_has_no_flips(capsys):
    rc, out, _ = compare(capsys, "-o", "json", candidate=EX / "int8")
    data = json.loads(out)
    assert rc == 0 and data["verdict"] == "Ship"
    assert all("flips" not in t and len(t["ci95"]) == 2 for t in data["tasks"])


def test_markdown(capsys):
    rc, out, _ = compare(capsys, "-o", "markdown", "--drop-mode", "absolute", "--aggregate", "meanOfRelativeDrops")
    assert out.startswith("| task | metric | baseline | candidate | drop pp | limit pp |")
    assert "| gsm8k | exact_match,strict-match | 0.5400 | 0.5100 | 3.00 |" in out
    assert "**verdict:" in out and "- average drop" in out


def test_policy_options(capsys, tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text("thresholds:\n  ship: 0.5\n  monitor: 1.5\n  abTest: 10\n")
    rc, out, _ = compare(capsys, "--thresholds", str(t), "-o", "json")
    assert rc == 1 and json.loads(out)["verdict"] == "ABTest"
    rc, out, _ = compare(capsys, "--task-limit", "truthfulqa_mc2=3.5", "-o", "json")
    assert rc == 1 and "truthfulqa_mc2: drop 3.55% >= 3.5% task limit" in json.loads(out)["reasons"]
    rc, out, _ = compare(capsys, "--metric", "gsm8k=exact_match,flexible-extract", "-o", "json")
    assert json.loads(out)["tasks"][0]["metric"] == "exact_match,flexible-extract"


def test_allow_mismatch_warns_on_stderr(capsys, tmp_path):
    data = json.loads(next((EX / "int8").glob("*/results_*.json")).read_text())
    data["n-shot"]["gsm8k"] = 5
    f = tmp_path / "results_2030-01-01T00-00-00.json"
    f.write_text(json.dumps(data))
    rc, _, err = compare(capsys, candidate=f)
    assert rc == 2 and err.strip() == ("quantgate compare: error: few-shot counts differ: gsm8k 0 vs 5 (baseline vs "
                                       "candidate); rerun both with the same settings or pass --allow-mismatch")
    rc, out, err = compare(capsys, "--allow-mismatch", candidate=f)
    assert rc == 0 and err.startswith("quantgate compare: warning: few-shot counts differ: gsm8k 0 vs 5")


def bad(tmp_path):
    notjson = tmp_path / "results_a.json"
    notjson.write_text("{oops")
    notlm = tmp_path / "results_b.json"
    notlm.write_text('{"hello": 1}')
    thr = tmp_path / "thr.yaml"
    thr.write_text("ship: 3\nmonitor: 1\nabTest: 5\n")
    fewer = tmp_path / "results_c.json"
    data = json.loads(next((EX / "int8").glob("*/results_*.json")).read_text())
    del data["results"]["winogrande"]
    fewer.write_text(json.dumps(data))
    zero = tmp_path / "results_d.json"
    data = json.loads(next((EX / "fp16").glob("*/results_*.json")).read_text())
    data["results"]["gsm8k"]["exact_match,strict-match"] = 0.0
    zero.write_text(json.dumps(data))
    return [
        (["--candidate", str(tmp_path / "nope")], "no such file or directory"),
        (["--candidate", str(notjson)], "not valid JSON"),
        (["--candidate", str(notlm)], "not lm-eval output"),
        (["--thresholds", str(thr)], "thresholds must satisfy 0 <= ship <= monitor <= abTest"),
        (["--thresholds", str(tmp_path / "none.yaml")], "--thresholds"),
        (["--task-limit", "gsm8k"], "expected TASK=PCT"),
        (["--task-limit", "gsm8k=two"], "is not a number"),
        (["--task-limit", "nosuch=2"], "task limit for nosuch: no such task"),
        (["--profile", "code-help"], "profile code-help needs task humaneval"),
        (["--candidate", str(fewer)], "only in baseline: winogrande"),
        (["--metric", "gsm8k=bleu,none"], "lack metric bleu,none"),
        (["--metric", "nosuch=acc,none"], "metric override for nosuch: no such task"),
        (["--baseline", str(zero)], "task gsm8k: baseline exact_match,strict-match is 0"),
        (["--candidate", str(FIXTURES / "candidate")], "sample counts differ"),
    ]


def test_every_bad_input_is_one_line_with_exit_2(capsys, tmp_path):
    for extra, message in bad(tmp_path):
        args = ["compare", "--baseline", str(EX / "fp16"), "--candidate", str(EX / "int8"), *extra]
        rc = main(args)
        out, err = capsys.readouterr()
        assert rc == 2, (extra, err)
        assert out == "" and err.count("\n") == 1 and err.startswith("quantgate compare: error: "), (extra, err)
        assert message in err, (extra, err)


def test_real_process_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "quantgate.cli", "compare", "--baseline", str(EX / "fp16"),
                           "--candidate", str(tmp_path / "missing")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--baseline", "x"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--baseline", "x", "--candidate", "y", "--profile", "nope"])
    assert exc.value.code == 2
