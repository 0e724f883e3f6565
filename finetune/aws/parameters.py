"""A fine-tuning's SSM parameters (`/finetune/<environment>/<fine-tuning>/<name>`): read, write
only what changed, delete. Tagged like the stack's resources when they are created."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from finetune.aws.errors import is_not_found
from finetune.core import names


def get(ssm: Any, environment: str, fine_tuning: str, name: str) -> str | None:
    try:
        value = ssm.get_parameter(Name=names.ssm_parameter_name(environment, fine_tuning, name))
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    return str(value["Parameter"]["Value"])


def put(ssm: Any, environment: str, fine_tuning: str, name: str, value: str) -> str | None:
    """Write `value` unless it is already there; what changed, for a report (None: nothing)."""
    path = names.ssm_parameter_name(environment, fine_tuning, name)
    current = get(ssm, environment, fine_tuning, name)
    if current == value:
        return None
    if current is None:
        # SSM refuses Tags together with Overwrite: tag on creation only.
        tags = [
            {"Key": key, "Value": tag}
            for key, tag in sorted(names.resource_tags(environment, fine_tuning).items())
        ]
        ssm.put_parameter(Name=path, Value=value, Type="String", Tags=tags)
        return f"SSM parameter {path} = {value}"
    ssm.put_parameter(Name=path, Value=value, Type="String", Overwrite=True)
    return f"SSM parameter {path} = {value} (was {current})"


def delete(ssm: Any, environment: str, fine_tuning: str, name: str) -> str | None:
    """Delete the parameter; what changed (None: it did not exist)."""
    path = names.ssm_parameter_name(environment, fine_tuning, name)
    try:
        ssm.delete_parameter(Name=path)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    return f"SSM parameter {path} deleted"
