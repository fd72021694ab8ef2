"""Per-question values of one task: the data model and its compact wire form.

Read from lm-eval's sample files by quantgate.lmeval.samples; compared by quantgate.decision.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass


@dataclass
class TaskSamples:
    """Per-question values of one leaf task.

    doc_ids: sorted document ids; values: ``"metric,filter"`` → one value per doc id (0/1
    for exact-match/accuracy, a probability for truthfulqa_mc2); digest: sha256 over the
    sorted ``doc_id:doc_hash`` lines, equal for two runs on the same documents.
    """

    doc_ids: list[int]
    values: dict[str, list[float]]
    digest: str
    # multiple-choice tasks: per doc id, the loglikelihood of each choice (lm-eval's filtered_resps)
    choices: list[list[float]] | None = None

    def to_compact(self) -> dict:
        n = len(self.doc_ids)
        ids = {"n": n} if self.doc_ids == list(range(n)) else self.doc_ids
        out = {"ids": ids, "d": self.digest, "v": {k: _encode(v) for k, v in self.values.items()}}
        if self.choices is not None:
            out["c"] = [[round(x, 4) for x in row] for row in self.choices]
        return out

    @classmethod
    def from_compact(cls, data: dict) -> "TaskSamples":
        ids = data["ids"]
        doc_ids = list(range(ids["n"])) if isinstance(ids, dict) else list(ids)
        values = {k: _decode(v, len(doc_ids)) for k, v in data["v"].items()}
        return cls(doc_ids=doc_ids, values=values, digest=data["d"], choices=data.get("c"))


def _encode(values: list[float]) -> dict:
    if all(v == 0.0 or v == 1.0 for v in values):
        bits = bytearray((len(values) + 7) // 8)
        for i, v in enumerate(values):
            if v:
                bits[i >> 3] |= 0x80 >> (i & 7)
        return {"b": base64.b64encode(bytes(bits)).decode("ascii")}
    return {"f": [round(v, 4) for v in values]}


def _decode(data: dict, n: int) -> list[float]:
    if "b" in data:
        bits = base64.b64decode(data["b"])
        return [1.0 if bits[i >> 3] & (0x80 >> (i & 7)) else 0.0 for i in range(n)]
    return [float(v) for v in data["f"]]
