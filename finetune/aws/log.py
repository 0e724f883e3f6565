"""One JSON line per action, on the root logger (Lambda sends it to the function's log group)."""

from __future__ import annotations

import json
import logging
from typing import Any

LOG = logging.getLogger("finetune")


def log(action: str, **fields: Any) -> None:
    LOG.info(json.dumps({"action": action, **fields}, default=str, sort_keys=True))


def log_error(action: str, **fields: Any) -> None:
    LOG.error(json.dumps({"action": action, **fields}, default=str, sort_keys=True))
