"""`finch serve --log-requests FILE`: one JSON line per generation request — its id, route, prompt, answer, token
counts and timings — rotated by size. Headers are never written, so neither is an API key."""

from __future__ import annotations

import json
import logging
import logging.handlers
from pathlib import Path

MAX_BYTES = 50 * 1024 * 1024
BACKUPS = 5  # FILE.1 … FILE.5, oldest dropped


class RequestLog:
    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger = logging.getLogger(f"finch.serve.requests.{path.resolve()}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)

    def write(self, record: dict) -> None:
        self.logger.info(json.dumps(record, ensure_ascii=False))

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()
