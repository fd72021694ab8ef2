"""Per-question values from lm-eval's ``samples_<task>_<timestamp>.jsonl`` files.

A sample line repeats the document, the prompts and the model's responses (kilobytes
each for few-shot tasks), then ends with ``"filter"``, ``"metrics"``, the hashes and the
metric values. Only that tail matters here, so a line is cut at its last ``"filter": ``
key and only the tail is parsed: inside JSON strings a quote is always escaped, and
everything after the top-level ``filter`` key is lm-eval's own bookkeeping, so the cut is
exact. Lines of another shape fall back to a full parse.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path

from quantgate.core.samples import TaskSamples
from quantgate.errors import InputError

_TAIL_KEY = b'"filter": '
_RESPS_KEY = b'"filtered_resps": '
_HEAD = b'{"doc_id": '
_DECODER = json.JSONDecoder()


CHUNK = 8 << 20


def _blocks(fh) -> Iterator[tuple[bytes, int, int]]:
    """(buffer, start, stop): the file as spans of whole lines, read CHUNK bytes at a time
    without copying the reads (only a line cut by a read boundary is joined)."""
    rest = b""
    while chunk := fh.read(CHUNK):
        pos = 0
        if rest:
            nl = chunk.find(b"\n")
            if nl < 0:
                rest += chunk
                continue
            joined = rest + chunk[: nl + 1]
            yield joined, 0, len(joined)
            pos = nl + 1
        cut = chunk.rfind(b"\n") + 1
        if cut > pos:
            yield chunk, pos, cut
        rest = chunk[max(cut, pos):]
    if rest:
        yield rest, 0, len(rest)


def _lines(buf: bytes, pos: int, stop: int) -> Iterator[tuple[int, int]]:
    """(start, end) of every line in buf[pos:stop], without copying the lines."""
    while pos < stop:
        nl = buf.find(b"\n", pos, stop)
        end = stop if nl < 0 else nl
        yield pos, end
        pos = end + 1


def _choice_logliks(resps) -> list[float] | None:
    """Per-choice loglikelihoods from a multiple-choice sample's filtered_resps ([[ll, greedy], ...])."""
    if not isinstance(resps, list) or len(resps) < 2:
        return None
    out = []
    for r in resps:
        ll = r[0] if isinstance(r, list) and r else r
        if isinstance(ll, str):  # lm-eval's tracker writes the (loglikelihood, is_greedy) pairs as strings
            try:
                ll = float(ll)
            except ValueError:
                return None
        if isinstance(ll, bool) or not isinstance(ll, (int, float)) or not math.isfinite(ll):
            return None
        out.append(float(ll))
    return out


def _parse_line(buf, start: int, end: int) -> tuple[int, dict]:
    """(doc_id, tail dict with filter, metrics, doc_hash and the metric values, and
    `_choices`: per-choice loglikelihoods of a multiple-choice sample, else None)."""
    cut = buf.rfind(_TAIL_KEY, start, end)
    if cut > start and buf[start:start + len(_HEAD)] == _HEAD:
        comma = buf.find(b",", start + len(_HEAD), end)
        try:
            tail, _ = _DECODER.raw_decode((b"{" + buf[cut:end]).decode("utf-8"))
            resps = buf.rfind(_RESPS_KEY, start, cut)
            if resps > start:
                value, _ = _DECODER.raw_decode(buf[resps + len(_RESPS_KEY):cut].decode("utf-8"))
                tail["_choices"] = _choice_logliks(value)
            return int(buf[start + len(_HEAD): comma]), tail
        except (ValueError, UnicodeDecodeError):
            pass  # unexpected shape: parse the whole line
    record = json.loads(buf[start:end])
    record["_choices"] = _choice_logliks(record.get("filtered_resps"))
    return int(record["doc_id"]), record


def read_samples_file(path: Path, task: str) -> TaskSamples:
    """Read one samples file; raise InputError naming the file when it is not lm-eval's.

    The file is read in large blocks and only each line's tail is copied and parsed: real
    few-shot sample files run to hundreds of megabytes."""
    per_doc: dict[int, dict[str, float]] = {}
    hashes: dict[int, str] = {}
    choices: dict[int, list[float]] = {}
    keys: set[str] = set()
    lineno = 0
    try:
        with open(path, "rb") as fh:
            for buf, lo, hi in _blocks(fh):
                for start, end in _lines(buf, lo, hi):
                    lineno += 1
                    if not buf[start:min(end, start + 64)].strip() and not buf[start:end].strip():
                        continue  # a blank line
                    try:
                        doc_id, tail = _parse_line(buf, start, end)
                        flt = tail["filter"]
                        names = tail["metrics"]
                        doc_hash = tail["doc_hash"]
                    except (ValueError, KeyError, TypeError):
                        raise InputError(f"{path}:{lineno}: not an lm-eval sample record (need doc_id, filter, "
                                         "metrics, doc_hash); pass lm-eval --log_samples output") from None
                    row = per_doc.setdefault(doc_id, {})
                    for name in names:
                        value = tail.get(name)
                        if isinstance(value, (int, float)):
                            key = f"{name},{flt}"
                            row[key] = float(value)
                            keys.add(key)
                    hashes.setdefault(doc_id, doc_hash)
                    if tail.get("_choices") is not None:
                        choices.setdefault(doc_id, tail["_choices"])
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check the path and permissions") from None
    doc_ids = sorted(per_doc)
    values = {}
    for key in sorted(keys):
        try:
            values[key] = [per_doc[d][key] for d in doc_ids]
        except KeyError:
            raise InputError(f"{path}: task {task} has {key} for some documents only; "
                             "the samples file is incomplete") from None
    digest = hashlib.sha256("".join(f"{d}:{hashes[d]}\n" for d in doc_ids).encode()).hexdigest()
    per_choice = [choices[d] for d in doc_ids] if doc_ids and len(choices) == len(doc_ids) else None
    return TaskSamples(doc_ids=doc_ids, values=values, digest=digest, choices=per_choice)
