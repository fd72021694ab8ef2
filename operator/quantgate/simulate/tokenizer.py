"""The simulator's deterministic, lossless tokenizer.

Pieces are words with their leading space (" apple"), single punctuation marks
and whitespace runs. Pieces seen in the local datasets get ids of their own
(>= FIRST_WORD_ID, in sorted order, so every process agrees); anything else
falls back to one token per UTF-8 byte (ids 0-255). decode(encode(s)) == s for
every string, which is what lets the server recognise a prompt lm-eval sent as
token ids.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

PIECE = re.compile(r" ?\w+| ?[^\w\s]|\s+")
EOS_TOKEN = "<|endoftext|>"
EOS_ID = 256
FIRST_WORD_ID = 257


class Tokenizer:
    def __init__(self, pieces: list[str]):
        self.id_to_piece = [*(None,) * FIRST_WORD_ID, *pieces]
        self.piece_to_id = {p: i for i, p in enumerate(self.id_to_piece) if p is not None}

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_piece)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for part in re.split(f"({re.escape(EOS_TOKEN)})", text):
            if part == EOS_TOKEN:
                ids.append(EOS_ID)
                continue
            for piece in PIECE.findall(part):
                known = self.piece_to_id.get(piece)
                if known is not None:
                    ids.append(known)
                else:
                    ids.extend(piece.encode("utf-8"))
        return ids

    def decode(self, ids: list[int]) -> str:
        out = bytearray()
        for i in ids:
            if 0 <= i < 256:
                out.append(i)
            elif i == EOS_ID:
                out += EOS_TOKEN.encode()
            elif FIRST_WORD_ID <= i < len(self.id_to_piece):
                out += self.id_to_piece[i].encode("utf-8")
            else:
                raise ValueError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return out.decode("utf-8", errors="replace")

    def piece(self, token_id: int) -> str:
        return self.decode([token_id])


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@lru_cache(maxsize=1)
def default_tokenizer() -> Tokenizer:
    """Vocabulary: every piece of the local datasets plus lm-eval's prompt words."""
    from quantgate.lmeval.local_tasks import DATA_DIR

    pieces: set[str] = set()
    extra = "Question: Answer: Q: A: The following are multiple choice questions (with answers) about #### \n"
    for text in [extra, *(s for f in sorted(Path(DATA_DIR).rglob("*.jsonl")) for line in f.open()
                          for s in _strings(json.loads(line)))]:
        pieces.update(PIECE.findall(text))
    return Tokenizer(sorted(pieces))
