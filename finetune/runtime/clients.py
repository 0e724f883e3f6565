"""The boto3 clients the Lambda functions use: created on first use (not at import, which keeps
cold starts low and lets tests and the rehearsal point them elsewhere), one per service, all with
adaptive retries for throttling."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 8})


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=RETRIES)


def forget() -> None:
    """Drop the clients (tests and the rehearsal change the endpoint or credentials)."""
    client.cache_clear()
