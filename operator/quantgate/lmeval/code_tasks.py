"""The `code` suite's tasks: lm-eval's official humaneval and mbpp configs on our own problems,
scored in quantgate's sandbox.

The local suite `include:`s each official YAML. That does not work here: loading an official
code YAML resolves its `!function utils...` tags, which imports humaneval/utils.py (or
mbpp/utils.py), and that module calls `evaluate.load("code_eval")` at import time: a Hub
download, then a test program run outside any sandbox. So the task config is derived instead:
lm-eval's own loader reads the installed YAML without resolving functions, every plain key
(prompt template, target template, stop sequences, generation settings, shots, version) is
kept as installed, and exactly the keys that name a function of the official utils are
replaced by quantgate.lmeval.code_eval's equivalents (same contract and names):

* humaneval: `metric_list` → code_eval.pass_at_k, the `create_test` filter → code_eval.build_predictions;
* mbpp: `metric_list` → code_eval.pass_at_1, few-shot examples → our data/mbpp/prompt.jsonl (inline).

Any other function reference left in an official config fails loudly (lm-eval changed it).
The dataset is swapped for quantgate/lmeval/tasks/data/{humaneval,mbpp} as in the local suite.
Both tasks keep `unsafe_code: true`, so lm-eval itself also refuses them unless the run
confirms unsafe code (quantgate does that only with --allow-code-execution).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import yaml

from quantgate.api.v1alpha1 import CODE_TASKS
from quantgate.errors import InputError

# lm-eval 0.4.13's own code-executing task families (unsafe_code: true): never run unsandboxed.
UNSAFE_PREFIXES = ("humaneval", "mbpp", "cruxeval", "longproc")
_FN = "quantgate.lmeval.code_eval"


class Function(str):
    """A `!function module.name` tag in a generated YAML."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Function, lambda dumper, value: dumper.represent_scalar("!function", str(value)))


def _official(path: Path) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False)  # function tags stay strings: nothing is imported


def _function_refs(value, where: str = "") -> list[str]:
    """Keys whose value is an unresolved function tag (a path into the task's own directory)."""
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in _function_refs(v, f"{where}.{k}" if where else k)]
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in _function_refs(v, f"{where}[{i}]")]
    if isinstance(value, str) and "/lm_eval/tasks/" in value and ".py" not in value and "/" in value:
        return [where]
    return []


def _dataset(data_dir: Path, files: dict[str, str]) -> dict:
    return {"dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(data_dir / rel) for split, rel in files.items()}}}


def code_task_configs(official: Path, data_dir: Path) -> dict[str, dict]:
    """File name → YAML content of the humaneval and mbpp task configs."""
    humaneval = _official(official / "humaneval" / "humaneval.yaml")
    humaneval.update(_dataset(data_dir, {"test": "humaneval/test.jsonl"}))
    humaneval["metric_list"] = [{**m, "metric": Function(f"{_FN}.pass_at_k")} for m in humaneval["metric_list"]]
    humaneval["filter_list"] = [
        {**f, "filter": [{**step, "filter_fn": Function(f"{_FN}.build_predictions")} for step in f["filter"]]}
        for f in humaneval["filter_list"]]

    mbpp = _official(official / "mbpp" / "mbpp.yaml")
    mbpp.update(_dataset(data_dir, {"test": "mbpp/test.jsonl"}))
    mbpp["metric_list"] = [{**m, "metric": Function(f"{_FN}.pass_at_1")} for m in mbpp["metric_list"]]
    # Inline, as the official config's function returns them: the few-shot items carry `is_fewshot`
    # (their target is the code), which the test items must not have (one schema per dataset).
    fewshot = [json.loads(line) for line in (data_dir / "mbpp" / "prompt.jsonl").read_text().splitlines()]
    mbpp["fewshot_config"] = {**mbpp.get("fewshot_config", {}), "sampler": "first_n", "samples": fewshot}

    configs = {"humaneval.yaml": humaneval, "mbpp.yaml": mbpp}
    for name, config in configs.items():
        if not config.get("unsafe_code"):
            raise RuntimeError(f"lm-eval's {name} no longer marks itself unsafe_code; review quantgate's code tasks")
        left = _function_refs({k: v for k, v in config.items() if not isinstance(v, Function)})
        if left:
            raise RuntimeError(f"lm-eval's {name} references functions quantgate does not replace: {', '.join(left)}")
    return configs


def dump(config: dict) -> str:
    return yaml.dump(config, Dumper=_Dumper, sort_keys=False)


def is_code_task(name: str) -> bool:
    return name.startswith(UNSAFE_PREFIXES)


def check_code_tasks(names: list[str], allowed: bool, local_data: bool) -> None:
    """Refuse (InputError, one line) a code task without the opt-in or outside quantgate's versions."""
    code = [n for n in names if is_code_task(n)]
    if not code:
        return
    if not allowed:
        raise InputError(f"task {code[0]} runs model-written code; pass --allow-code-execution "
                         "(spec.allowCodeExecution: true) to run it in quantgate's sandbox")
    if not local_data or any(n not in CODE_TASKS for n in code):
        bad = next((n for n in code if n not in CODE_TASKS), code[0])
        raise InputError(f"task {bad}: quantgate runs code only in its sandboxed tasks "
                         f"{' and '.join(CODE_TASKS)} on its own problems; use --suite code "
                         "(or --local-data with those tasks)")


@contextlib.contextmanager
def code_execution(allowed: bool, manifest: dict) -> Iterator[None]:
    """While lm-eval runs: allow sandboxed scoring (if allowed) and record how confined it is."""
    if not allowed:
        yield
        return
    from quantgate.lmeval.code_eval import allow_code_execution
    from quantgate.lmeval.sandbox import harden_runner, isolation

    harden_runner()
    manifest["codeExecution"] = {"sandbox": isolation()}
    with allow_code_execution():
        yield
