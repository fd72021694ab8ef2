"""The generated answers of a run directory, and how two runs' answers agree.

lm-eval logs each generation task's raw output per document (`resps`, before its answer
filters) in `samples_<task>_<timestamp>.jsonl`; the same model and prompts decoded greedily give
the same text, whichever engine ran them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from quantgate.errors import InputError


def generations(run_dir: Path, task: str) -> dict[int, str]:
    """doc id → generated text of one generation task of a run directory."""
    pattern = re.compile(rf"samples_{re.escape(task)}_\d{{4}}-.*\.jsonl")
    files = sorted(p for p in Path(run_dir).glob(f"samples_{task}_*.jsonl") if pattern.fullmatch(p.name))
    if not files:
        raise InputError(f"{run_dir}: no samples file of task {task}; was it part of the run?")
    out: dict[int, str] = {}
    with open(files[-1]) as fh:  # one record per document and filter; the raw response is the same
        for line in fh:
            if line.strip():
                record = json.loads(line)
                resps = record.get("resps") or [[None]]
                if not isinstance(resps[0], list) or not isinstance(resps[0][0], str):
                    raise InputError(f"{files[-1]}: task {task} logged no generated text; is it a generation task?")
                out.setdefault(int(record["doc_id"]), resps[0][0])
    return out


@dataclass
class Agreement:
    same: int
    compared: int
    differing: list[int] = field(default_factory=list)  # doc ids whose texts differ
    unmatched: int = 0  # documents only one of the runs answered

    @property
    def identical(self) -> bool:
        return self.compared > 0 and self.same == self.compared and not self.unmatched


def agreement(a: dict[int, str], b: dict[int, str]) -> Agreement:
    common = sorted(set(a) & set(b))
    differing = [d for d in common if a[d] != b[d]]
    return Agreement(same=len(common) - len(differing), compared=len(common), differing=differing,
                     unmatched=len(set(a) ^ set(b)))
