"""How the commands that call AWS get their clients, and what they say when AWS cannot be reached.

One place for the standard credential chain (optionally another endpoint, such as moto's server),
botocore's standard retries, and the usage errors for no region, no credentials, refused
credentials and an unreachable endpoint: `status`, `report`, `retry` and `whoami` say the same.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from finetune.aws.errors import error_code, error_message
from finetune.cli.main import UsageError

RETRY_ATTEMPTS = 3  # botocore standard mode: throttling and transient errors are retried
NO_CREDENTIALS = (
    "no AWS credentials found. `make diff`, `make deploy` and `make destroy` need an AWS account: "
    "configure credentials with AWS_PROFILE=NAME (set up by `aws configure` or `aws sso login --profile "
    "NAME`), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), then run the command "
    "again. `make synth`, `make test` and `make rehearse` need none; an emulator given with "
    "--endpoint-url accepts any credentials."
)
# The codes of credentials AWS does not accept (unknown, expired or mis-signed).
REFUSED_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)


def aws_client(
    service: str, *, endpoint_url: str | None, region: str | None, read_timeout: int | None = None
) -> Any:
    """A boto3 client by the standard credential chain, optionally on another endpoint;
    `read_timeout` seconds for a call that waits long (default: botocore's 60)."""
    import boto3
    from botocore.config import Config

    timeouts = {} if read_timeout is None else {"read_timeout": read_timeout, "connect_timeout": 10}
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS}, **timeouts),
    )


def refused(error: Exception) -> bool:
    """Whether AWS refused the credentials themselves (not the call)."""
    return isinstance(error, ClientError) and error_code(error) in REFUSED_CODES


def usage_error_for(error: Exception, call: str = "AWS call") -> UsageError:
    """A clear message for what stops the command: no region, no or refused credentials, no
    endpoint, or the failed `call` with AWS's code and the first line of its message."""
    if isinstance(error, NoRegionError):
        return UsageError("no AWS region: pass --region or set AWS_REGION (or a region in your AWS profile)")
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return UsageError(NO_CREDENTIALS)
    if isinstance(error, EndpointConnectionError):
        return UsageError(f"cannot reach the endpoint: {error}")
    if isinstance(error, ClientError):
        code = error_code(error)
        if code in REFUSED_CODES:
            return UsageError(
                f"AWS refused the credentials ({code}): refresh them (`aws sso login`, or new access keys) "
                "or choose others with AWS_PROFILE; `make synth` needs none"
            )
        first_line = error_message(error).strip().splitlines()[0] if error_message(error).strip() else ""
        return UsageError(f"{call} failed: {code}: {first_line or error}")
    if isinstance(error, BotoCoreError):
        return UsageError(f"the AWS credentials could not be used: {error}")
    return UsageError(f"{call} failed: {error}")
