"""The app factory uvicorn calls in each worker of `streamflow serve --workers N`.

Each worker is a process of its own: it builds its own Service (online reader, model slots
and their watcher, prediction log with its own spool files), so a model reload happens per
worker, at each worker's alias check. Settings arrive through the environment the CLI set.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI


def app_from_installation() -> FastAPI:
    from .app import create_app
    from .service import Service

    # uvicorn configured its own loggers in this process; ours follow its level.
    level = logging.getLogger("uvicorn.error").getEffectiveLevel()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s [%(process)d] %(message)s")
    return create_app(Service.from_installation())
