"""Reading botocore's errors one way: the code, the message, and whether it means "not there"."""

from __future__ import annotations

from botocore.exceptions import ClientError

# Every service's "no such thing": Bedrock, S3 (HeadObject answers a bare 404), SSM.
NOT_FOUND_CODES = frozenset(
    {"ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "404", "NotFound", "ParameterNotFound"}
)
# S3 answers 403, not 404, for a missing key unless the caller may list the bucket.
FORBIDDEN_CODES = frozenset({"403", "AccessDenied", "Forbidden"})


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)


def is_not_found(error: ClientError) -> bool:
    return error_code(error) in NOT_FOUND_CODES
