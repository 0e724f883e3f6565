"""The one way this project acknowledges a cdk-nag (v3) finding.

cdk-nag 3 accepts any reason, even an empty one; an acknowledgment is a security decision a reviewer
reads in the template metadata, so this helper refuses reasons that do not explain themselves.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

MIN_REASON_LENGTH = 40
VAGUE_REASONS = frozenset({"ok", "fine", "needed", "required", "by design", "false positive", "n/a", "todo"})


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one finding (`AwsSolutions-IAM5[Resource::...]`) on the narrowest construct.

    Raises ValueError for a reason shorter than MIN_REASON_LENGTH characters or a stock phrase.
    """
    text = reason.strip()
    if len(text) < MIN_REASON_LENGTH or text.lower().rstrip(".") in VAGUE_REASONS:
        raise ValueError(
            f"acknowledgment of {finding} on {scope.node.path} needs a specific reason "
            f"(at least {MIN_REASON_LENGTH} characters saying why the finding does not apply), got {reason!r}"
        )
    if "-" not in finding or " " in finding:
        raise ValueError(f"{finding!r} is not a cdk-nag finding id such as 'AwsSolutions-IAM5[Action::s3:*]'")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding, reason=text))


def as_finding_text(scope: IConstruct, value: str) -> str:
    """A (token) string as cdk-nag writes it in finding ids: `arn:aws:s3:::<Bucket1234.Arn>/x`."""

    def render(resolved: Any) -> str:
        if isinstance(resolved, str):
            return resolved
        if "Ref" in resolved:
            return f"<{resolved['Ref']}>"
        if "Fn::GetAtt" in resolved:
            return f"<{'.'.join(resolved['Fn::GetAtt'])}>"
        if "Fn::Join" in resolved:
            separator, parts = resolved["Fn::Join"]
            return str(separator).join(render(part) for part in parts)
        raise ValueError(f"cannot spell {resolved!r} as cdk-nag does")

    return render(cdk.Stack.of(scope).resolve(value))


def acknowledge_prefix_grants(
    policy: IConstruct, bucket: s3.IBucket, prefixes: list[str], reason: str
) -> None:
    """Acknowledge `AwsSolutions-IAM5` for object grants under each prefix of one bucket (`prefix/*`)."""
    for prefix in prefixes:
        resource = as_finding_text(policy, bucket.arn_for_objects(f"{prefix}*"))
        acknowledge(policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
