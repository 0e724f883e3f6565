"""Where a rehearsal runs: moto's server on loopback, boto3 aimed at it, the handlers' clients on it.

- moto's threaded server on 127.0.0.1 (a free port); its process-wide state is reset before and
  after (`/moto-api/reset`).
- os.environ and boto3's default session point at it, with fake credentials and the plan's region,
  for the rehearsal's duration only; nothing (no profile, no config file) may redirect them.
- moto has no provisioned-throughput or custom-model-deployment API (its server answers HTTP 500):
  those calls go to `finetune.cli.local_serving.FakeBedrockServing`, which wraps a real boto3
  Bedrock client on the moto endpoint. For the rehearsal only, the serving function's clients are
  built on that fake, and its pause between reconcile passes lets the fake's time pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from finetune.aws.endpoints import Clients

LAMBDA_TIMEOUT_MS = 15 * 60 * 1000  # both functions run up to 15 minutes
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": "rehearsal"}
# Every variable the rehearsal sets or must hide for its duration (restored afterwards).
SAVED_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "FINETUNE_SERVING",
    "FINETUNE_TOPIC_ARN",
    "FINETUNE_JOB_TEMPLATE",
    "FINETUNE_INCOMING_PREFIX",
    "FINETUNE_TRAINING_PREFIX",
)
SERVICES = ("s3", "iam", "kms", "sns", "sqs", "ssm", "sts", "bedrock", "cloudwatch", "cloudformation")


@dataclass
class LambdaContext:
    """The parts of a Lambda context the handlers read."""

    function_name: str
    aws_request_id: str = "rehearsal"

    def get_remaining_time_in_millis(self) -> int:
        return LAMBDA_TIMEOUT_MS


class LogCapture(logging.Handler):
    """Collects what the handlers log (their JSON lines) for the current step."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name in ("root", "finetune"):
            self.lines.append(record.getMessage())

    def take(self) -> tuple[str, ...]:
        taken, self.lines = tuple(self.lines), []
        return taken


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """moto's threaded server on a free loopback port; yields its URL. Its state is reset before and after."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        _reset(url)
        yield url
    finally:
        with contextlib.suppress(OSError):
            _reset(url)
        server.stop()


def _reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


@contextlib.contextmanager
def aws_pointed_at(url: str, region: str) -> Iterator[None]:
    """os.environ (and boto3's default session) aimed at `url` with fake credentials; restored after."""
    import boto3

    hidden = [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_")]
    saved = {name: os.environ.get(name) for name in (*SAVED_VARIABLES, *hidden)}
    saved_session = boto3.DEFAULT_SESSION
    try:
        for name in saved:
            os.environ.pop(name, None)
        os.environ.update(FAKE_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = url
        os.environ["AWS_DEFAULT_REGION"] = region
        os.environ["AWS_REGION"] = region
        # No profile or config file may redirect an endpoint or add credentials.
        os.environ["AWS_CONFIG_FILE"] = os.devnull
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        boto3.DEFAULT_SESSION = None
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        boto3.DEFAULT_SESSION = saved_session


@contextlib.contextmanager
def handler_clients(region: str) -> Iterator[tuple[dict[str, Any], Any]]:
    """Clients on the endpoint for the rehearsal's own checks, and the Bedrock fake (evaluation jobs
    in front of the serving fake: its `settle()` lets time pass for both); the handlers' clients are
    recreated on the endpoint, serving's on the fakes, and dropped afterwards."""
    import boto3

    from finetune.cli.local_evaluation import FakeBedrockEvaluation, FakeBedrockRuntime
    from finetune.cli.local_serving import FakeBedrockServing
    from finetune.runtime import clients as runtime_clients
    from finetune.runtime import serving_lifecycle

    runtime_clients.forget()
    clients = {service: boto3.client(service) for service in SERVICES}
    account = str(clients["sts"].get_caller_identity()["Account"])
    fake = FakeBedrockServing(clients["bedrock"], region=region, account=account)
    # Evaluation jobs (the evaluation gate) in front of the serving fake; Converse on its endpoints.
    evaluation = FakeBedrockEvaluation(fake, s3=clients["s3"], region=region, account=account)
    fronted = Clients(
        bedrock=evaluation,
        ssm=clients["ssm"],
        cloudwatch=clients["cloudwatch"],
        sns=clients["sns"],
        cloudformation=clients["cloudformation"],
        s3=clients["s3"],
        runtime=FakeBedrockRuntime(fake),
    )
    original, original_pause = serving_lifecycle.clients, serving_lifecycle.pause
    serving_lifecycle.clients = lambda: fronted
    # While a run waits for a PT to come up, time passes: the fakes' creations and jobs finish.
    serving_lifecycle.pause = lambda _seconds: evaluation.settle()
    try:
        yield clients, evaluation
    finally:
        serving_lifecycle.clients, serving_lifecycle.pause = original, original_pause
        runtime_clients.forget()
