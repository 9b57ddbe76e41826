"""Error text that may reach a response or a log line: one line, no stack, no credentials."""

from __future__ import annotations

import re
import socket

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


def is_store_outage(error: BaseException) -> bool:
    """Whether `error` (or an error it was raised from) says the store could not be reached or
    answered in time, rather than that our code or query is wrong.

    Outages: the drivers' connection and operational errors (refused, reset, timed out, shut
    down, statement timeout), socket connection errors, and a feature service not (yet) applied
    in Feast's registry. Anything else (a TypeError, a KeyError, a syntax error in SQL, a
    missing file) is a bug or a broken installation: a 500, logged with its stack trace.
    """
    import psycopg
    from feast.errors import FeastObjectNotFoundException
    from sqlalchemy import exc as sqlalchemy_errors

    outages = (
        psycopg.OperationalError,
        psycopg.InterfaceError,
        sqlalchemy_errors.OperationalError,
        sqlalchemy_errors.InterfaceError,
        sqlalchemy_errors.DisconnectionError,
        sqlalchemy_errors.TimeoutError,
        FeastObjectNotFoundException,
        ConnectionError,  # refused, reset, aborted
        TimeoutError,  # socket.timeout too
        socket.gaierror,  # the store's host name does not resolve
    )
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, outages):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
