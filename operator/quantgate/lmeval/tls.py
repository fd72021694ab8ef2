"""TLS trust for endpoint traffic: the system CAs, a private CA bundle, or (explicitly) none.

One `Trust` value answers both HTTP stacks lm-eval uses: `requests` (preflight, remote
tokenizer, single-request calls) takes a CA file path or a bool for `verify`; `aiohttp`
(concurrent completions) takes an `ssl.SSLContext` or a bool. A CA bundle replaces the
system CAs for the endpoint: its certificate must chain to one of the bundle's CAs.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from quantgate.errors import InputError

_VERIFY_FAILED = re.compile(r"certificate verify failed: ([^(\]\n]+)")


@dataclass(frozen=True)
class Trust:
    ca_file: str | None = None
    insecure: bool = False

    def requests_verify(self) -> bool | str:
        if self.insecure:
            return False
        return self.ca_file or True

    def aiohttp_ssl(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False
        return context_from_file(self.ca_file) if self.ca_file else True

    @property
    def custom(self) -> bool:
        return self.insecure or self.ca_file is not None


def context_from_file(path: str) -> ssl.SSLContext:
    """A verifying client context trusting only the CAs in `path` (InputError if unusable)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"CA bundle {path}: cannot read it ({getattr(exc, 'strerror', None) or exc}); "
                         "give a PEM file of CA certificates") from None
    return context_from_pem(text, where=f"CA bundle {path}")


def context_from_pem(pem: str, where: str = "CA bundle") -> ssl.SSLContext:
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise InputError(f"{where} holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
                         "give the CA certificates that sign the endpoint's certificate")
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=_certificates_only(pem))
    return context


def _certificates_only(pem: str) -> str:
    """The CERTIFICATE blocks of a PEM text (bundles often carry comments or stray keys)."""
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, flags=re.S)
    return "\n".join(blocks) + "\n"


def tls_failure(exc: BaseException) -> str | None:
    """The TLS reason behind a connection error (certificate not trusted, hostname mismatch,
    handshake failure), or None when the error is not about TLS."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        err = stack.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {err.verify_message or err.reason}"
        if isinstance(err, ssl.SSLError):
            return err.reason or str(err).splitlines()[0]
        match = _VERIFY_FAILED.search(str(err))
        if match:
            return f"certificate verify failed: {match.group(1).strip()}"
        for nxt in (err.__cause__, err.__context__, getattr(err, "reason", None), *getattr(err, "args", ())):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
    return None


def untrusted_message(url: str, reason: str) -> str:
    return (f"TLS: {url} presented a certificate this client does not trust ({reason}); give the CA that "
            "signed it as caBundle (quantgate run --ca-bundle FILE)")
