"""Error text that may reach a response or a log line: one line, no stack, no credentials."""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host (URLs in driver and MLflow messages).
_CREDENTIALS = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@", re.IGNORECASE)
# password=... in libpq connection strings.
_PASSWORD_PAIR = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
MAX_REASON_CHARS = 300


def reason(error: BaseException, with_type: bool = False) -> str:
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if with_type or not text:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return redact(text)[:MAX_REASON_CHARS]


def redact(text: str) -> str:
    text = _CREDENTIALS.sub(r"\g<head>:***@", text)
    return _PASSWORD_PAIR.sub(r"\1***", text)
