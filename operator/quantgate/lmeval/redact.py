"""Keep an endpoint's API key out of results, logs and error messages."""

from __future__ import annotations

import logging
from pathlib import Path

MASK = "***"


class Redactor:
    def __init__(self, secrets: list[str | None]):
        # Only non-trivial strings: masking "a" would mangle every file.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for s in self.secrets:
            value = value.replace(s, MASK)
        return value

    def data(self, value):
        """A copy of nested dicts/lists/strings with every secret masked."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.data(v) for v in value)
        return value

    def files(self, root: Path) -> None:
        """Last line of defence: rewrite any file under root that still contains a secret."""
        if not self.secrets:
            return
        for path in root.rglob("*"):
            if path.is_file():
                raw = path.read_bytes()
                if any(s.encode() in raw for s in self.secrets):
                    path.write_text(self.text(raw.decode("utf-8", errors="replace")))


class RedactingFilter(logging.Filter):
    """Attach to handlers: masks secrets in the rendered message and traceback."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor.secrets:
            record.msg = self.redactor.text(record.getMessage())
            record.args = ()
            if record.exc_info:
                record.exc_text = self.redactor.text(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True
