"""`quantgate report`: the decision matrix as table, markdown, JSON and HTML."""

import json
import re
from pathlib import Path

import pytest

from quantgate.cli import main

EX = Path(__file__).resolve().parents[2] / "examples"
VARIANTS = ["int8", "int4-g128", "int4-g64"]


def report(capsys, *extra, variants=VARIANTS):
    args = ["report", "--baseline", str(EX / "fp16")]
    for v in variants:
        args += ["--candidate", f"{v}={EX / v}"]
    rc = main([*args, "--size", "Reference=16GB", "--size", "int8=8GB", *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_table_rows_reference_first(capsys):
    rc, out, err = report(capsys)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["Variant", "Size", "gsm8k", "hellaswag", "arc_challenge", "winogrande",
                                "truthfulqa_mc2", "mmlu", "Avg", "Drop", "%", "Verdict", "Promotable", "Decisive"]
    rows = [line.split() for line in lines[2:6]]
    assert rows[0][:3] == ["Reference", "16GB", "0.5400"] and rows[0][-4:] == ["-", "-", "-", "-"]
    assert [r[0] for r in rows] == ["Reference", *VARIANTS]
    assert [r[-4:] for r in rows[1:]] == [["0.73", "Ship", "yes", "no"], ["2.20", "Monitor", "yes", "yes"],
                                          ["1.22", "Monitor", "yes", "no"]]
    assert rows[2][1] == "-"  # no size given


def test_profile_changes_verdicts(capsys):
    rc, out, _ = report(capsys, "--profile", "math-tutoring", "-o", "json")
    data = json.loads(out)
    assert rc == 0 and data["profile"] == "math-tutoring"
    assert [r.get("verdict") for r in data["rows"]] == [None, "Ship", "Block", "Block"]
    assert data["rows"][2]["comparison"]["reasons"][0] == "gsm8k: drop 5.56% >= 2% limit of profile math-tutoring"
    assert data["tasks"][0] == {"task": "gsm8k", "metric": "exact_match,strict-match"}
    assert data["rows"][0] == {"name": "Reference", "size": "16GB", "scores": data["rows"][0]["scores"]}


def test_markdown(capsys):
    rc, out, _ = report(capsys, "-o", "markdown")
    assert out.startswith("| Variant | Size | gsm8k |")
    assert "| Reference | 16GB | 0.5400 |" in out and "| int4-g128 | - | 0.5100 |" in out
    assert "**int4-g128**: Monitor" in out


def test_html_is_self_contained(capsys, tmp_path):
    out_file = tmp_path / "r.html"
    rc, out, _ = report(capsys, "-o", "html", "--out", str(out_file))
    assert rc == 0 and out == ""
    html = out_file.read_text()
    # the only URL is the SVG namespace, which is a name and never fetched
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(script|link|img|iframe)\b", html) and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html
    assert html.count('class="bar"') == 3 * 7  # 3 variants x (6 tasks + the average)
    assert 'class="limit"' not in html
    report(capsys, "-o", "html", "--out", str(out_file), "--profile", "math-tutoring")
    assert out_file.read_text().count('class="limit"') == 1  # gsm8k's 2% limit


@pytest.mark.parametrize("extra, message", [
    (["--size", "int9=3GB"], "--size for unknown variant(s) int9"),
    (["--size", "int8"], "expected NAME=SIZE"),
    (["--candidate", "int8=" + str(EX / "int8")], "each NAME must be given once"),
    (["--candidate", "Reference=" + str(EX / "int8")], "that name is the baseline's row"),
    (["--candidate", "x=/nonexistent"], "/nonexistent: no such file or directory"),
    (["--profile", "code-help"], "candidate int8: profile code-help needs task humaneval"),
    (["--out", "/nonexistent/dir/r.html"], "--out /nonexistent/dir/r.html: cannot write"),
])
def test_bad_input_exit_2_one_line(capsys, extra, message):
    rc, out, err = report(capsys, *extra)
    assert rc == 2 and err.count("\n") == 1 and err.startswith("quantgate report: error: ")
    assert message in err


SIZES = ["--size", "Reference=16.1Gi", "--size", "int8=8.5 GB", "--size", "int4-g128=4.9GB", "--size", "int4-g64=5.1GB"]


def _report_sized(capsys, *extra):
    args = ["report", "--baseline", str(EX / "fp16")]
    for v in VARIANTS:
        args += ["--candidate", f"{v}={EX / v}"]
    rc = main([*args, *SIZES, *extra])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def test_selected_is_the_smallest_promotable_variant(capsys):
    general = json.loads(_report_sized(capsys, "-o", "json"))["selected"]
    assert general["name"] == "int4-g128" and "4.9GB" in general["reason"]  # Monitor is promotable
    math = json.loads(_report_sized(capsys, "-o", "json", "--profile", "math-tutoring"))["selected"]
    assert math["name"] == "int8"  # both INT4 variants are blocked for math tutoring
    assert "selected: int8 (smallest promotable variant (8.5 GB" in _report_sized(capsys, "--profile",
                                                                                   "math-tutoring")
    html = _report_sized(capsys, "-o", "html", "--profile", "math-tutoring")
    assert '<p id="selected">Selected: <b>int8</b>' in html


def test_selected_names_unsized_promotable_variants_and_can_be_none(capsys):
    rc, out, _ = report(capsys, "-o", "json")  # sizes only for Reference and int8
    sel = json.loads(out)["selected"]
    assert sel["name"] == "int8" and "not ranked: int4-g128, int4-g64" in sel["reason"]
    rc, out, _ = report(capsys, "-o", "json", "--task-limit", "gsm8k=0.5", "--task-limit", "mmlu=0.5")
    assert json.loads(out)["selected"] == {"name": None, "reason": "no variant is promotable"}
