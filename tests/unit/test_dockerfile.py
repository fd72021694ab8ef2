"""The Dockerfile without a Docker engine: hadolint, its structure, the locks it installs from,
and its build-stage install commands run for real into a fresh virtualenv."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its (INSTRUCTION, arguments) in order."""
    logical, buf = [], ""
    for line in text.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            stages.append(Stage(words[0], words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return global_args, stages


def env_pairs(args: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(args))


GLOBAL_ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())
BUILD, FINAL = STAGES[0], STAGES[-1]


def read_lock(path: Path) -> dict[str, tuple[Requirement, list[str]]]:
    """name -> (requirement with its marker, hashes) from a `pip install --require-hashes` lock."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        hashes = re.findall(r"--hash=(sha256:[0-9a-f]{64})", line)
        req = Requirement(re.sub(r"\s*--hash=\S+", "", line).strip())
        pins[canonicalize_name(req.name)] = (req, hashes)
    return pins


def pinned_version(req: Requirement) -> str:
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req} is not an exact pin"
    return spec.version


# ---------------------------------------------------------------- lint and structure


def test_hadolint_passes_with_no_findings(tmp_path):
    # Our own config (no ignored rule), so a stray .hadolint.yaml cannot hide findings; threshold
    # "info" so even info/style findings fail.
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")
    out = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--config", str(config), "--failure-threshold", "info", "--no-color",
         "--format", "json", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert json.loads(out.stdout or "[]") == [], out.stdout + out.stderr
    assert out.returncode == 0


def test_every_hadolint_ignore_is_justified_by_a_comment():
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            before = lines[i - 1].strip() if i else ""
            assert before.startswith("#") and "hadolint" not in before, f"line {i + 1}: unjustified {line!r}"


def test_multi_stage_slim_python_311():
    assert len(STAGES) >= 2
    base = GLOBAL_ARGS["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    assert all(s.base == "${PYTHON_IMAGE}" for s in STAGES)


def test_final_stage_runs_as_numeric_non_root_user_with_quantgate_entrypoint():
    (user,) = FINAL.args("USER")[-1:]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), user
    assert json.loads(FINAL.args("ENTRYPOINT")[-1]) == ["quantgate"]
    assert not any(k == "HEALTHCHECK" for s in STAGES for k, _ in s.instructions), "probes, not HEALTHCHECK"


def test_final_stage_has_no_build_tools_and_installs_nothing():
    runs = " ".join(FINAL.args("RUN"))
    assert "pip install" not in runs and "apt-get" not in runs
    assert "uninstall --yes pip setuptools wheel" in runs
    # Only the app venv crosses over, never the build venv.
    copies = FINAL.args("COPY")
    assert copies == ["--from=build /opt/quantgate /opt/quantgate"], copies
    assert '"$APP_VENV/bin/pip" uninstall --yes pip' in " ".join(BUILD.args("RUN"))


def test_oci_labels():
    labels = env_pairs(" ".join(FINAL.args("LABEL")))
    for key in ("title", "description", "version", "revision", "created", "source", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]


def test_vllm_build_arg_selects_the_vllm_lock():
    assert "VLLM=false" in BUILD.args("ARG")
    run = BUILD.args("RUN")[0]
    assert 'if [ "$VLLM" = "true" ]; then lock=requirements-vllm.lock' in run
    assert "--require-hashes" in run


def test_dockerignore_admits_exactly_what_the_build_copies():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for args in BUILD.args("COPY"):
        copied.update(a.rstrip("/") for a in args.split()[:-1])
    assert copied == allowed


def test_docker_build_command_is_documented():
    doc = (ROOT / "docs" / "install.md").read_text()
    assert "docker build -t quantgate:0.1.0 ." in doc
    assert "--build-arg VLLM=true" in doc


# ---------------------------------------------------------------- the locks


def test_runtime_lock_pins_every_dependency_with_hashes():
    pins = read_lock(ROOT / "requirements.lock")
    for dep in map(Requirement, PYPROJECT["project"]["dependencies"]):
        name = canonicalize_name(dep.name)
        assert name in pins, f"{dep.name} missing from requirements.lock: run `make lock`"
        req, _ = pins[name]
        assert dep.specifier.contains(pinned_version(req)), f"{req} violates pyproject's {dep}: run `make lock`"
    for name, (req, hashes) in pins.items():
        assert hashes, f"{name} has no hash"
        pinned_version(req)


def test_vllm_lock_adds_vllm_to_the_runtime_set():
    pins = read_lock(ROOT / "requirements-vllm.lock")
    (vllm,) = map(Requirement, PYPROJECT["project"]["optional-dependencies"]["vllm"])
    assert vllm.specifier.contains(pinned_version(pins["vllm"][0]))
    for dep in map(Requirement, PYPROJECT["project"]["dependencies"]):
        assert dep.specifier.contains(pinned_version(pins[canonicalize_name(dep.name)][0])), dep
    assert all(hashes for _, hashes in pins.values())


def test_build_lock_satisfies_the_build_system():
    pins = read_lock(ROOT / "requirements-build.lock")
    for dep in map(Requirement, PYPROJECT["build-system"]["requires"]):
        assert dep.specifier.contains(pinned_version(pins[canonicalize_name(dep.name)][0])), dep


# ---------------------------------------------------------------- the install, for real


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_build_stage_commands_install_a_working_quantgate(tmp_path):
    """Runs the build stage's RUN lines verbatim with /bin/sh, in a copy of the context that holds
    only what the stage COPYs. Only ENV values change: venv paths to tmp_path, and pip's cache is
    allowed (it changes how fast, not what is installed)."""
    context = tmp_path / "src"
    context.mkdir()
    # The host's pip settings (certificate, wheelhouse, timeout) play the build host's network set-up.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    # The interpreter behind .venv stands in for the base image's /usr/local/bin/python.
    env["PATH"] = f"{sys.base_prefix}/bin:/usr/bin:/bin"
    for keyword, args in BUILD.instructions:
        if keyword == "ARG":
            name, _, default = args.partition("=")
            env[name] = default
        elif keyword == "ENV":
            env.update(env_pairs(args))
            env.pop("PIP_NO_CACHE_DIR")
            env["APP_VENV"], env["BUILD_VENV"] = str(tmp_path / "app"), str(tmp_path / "build")
        elif keyword == "COPY":
            *sources, _dest = args.split()
            for src in sources:
                path = ROOT / src.rstrip("/")
                if path.is_dir():
                    shutil.copytree(path, context / path.name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
                else:
                    shutil.copy(path, context / path.name)
        elif keyword == "RUN":
            out = subprocess.run(["/bin/sh", "-c", args], cwd=context, env=env, capture_output=True, text=True)
            assert out.returncode == 0, f"RUN {args}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    python = shutil.which("python", path=env["PATH"])
    assert Path(python).resolve().name.startswith("python3.11"), "the image's base is Python 3.11"
    app = tmp_path / "app" / "bin"
    assert not (app / "pip").exists(), "pip must be gone from the app venv"
    cli = subprocess.run([str(app / "quantgate"), "--help"], capture_output=True, text=True, env={"PATH": str(app)})
    assert cli.returncode == 0 and "usage" in cli.stdout.lower(), cli.stderr
    imports = "import quantgate, kopf, kubernetes, lm_eval, pydantic, prometheus_client, yaml"
    assert subprocess.run([str(app / "python"), "-c", imports], env={}).returncode == 0
    for command in (["dev", "status"], ["simulate", "-f", "variants.yaml"]):  # development tools: not in the image
        out = subprocess.run([str(app / "quantgate"), *command], capture_output=True, text=True, env={"PATH": str(app)})
        assert out.returncode == 2 and "not part of this install" in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
