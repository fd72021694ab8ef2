"""The HTML report rendered by a real headless Chromium: the matrix and the chart are there
and the page loads with every network feature switched off."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from quantgate.decision import Policy, matrix
from quantgate.lmeval.results import load_run
from quantgate.report.html import render_html

EX = Path(__file__).resolve().parents[2] / "examples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/system-deps.sh installs it)")


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: dict[str, list[dict]] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.setdefault(tag, []).append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    m = matrix(load_run(EX / "fp16", with_samples=False),
               {n: load_run(EX / n, with_samples=False) for n in ("int8", "int4-g128", "int4-g64")},
               Policy(), {"Reference": "16GB"})
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html(m))
    return path


def test_chromium_renders_matrix_and_chart(page, tmp_path):
    proc = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Collect()
    dom.feed(proc.stdout)
    assert [t.get("id") for t in dom.tags["table"]] == ["matrix"]
    assert len(dom.tags["tr"]) == 5  # header + Reference + 3 variants
    assert [s.get("id") for s in dom.tags["svg"]] == ["drop-chart"]
    assert sum(1 for r in dom.tags["rect"] if r.get("class") == "bar") == 21
    text = " ".join(dom.text)
    for word in ("Reference", "int4-g128", "Monitor", "Ship", "16GB", "truthfulqa_mc2"):
        assert word in text


def test_chromium_screenshot(page, tmp_path):
    shot = tmp_path / "report.png"
    proc = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a drawn page, not a blank one
