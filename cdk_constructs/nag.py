"""The one way this project acknowledges cdk-nag (v3) findings.

cdk-nag 3 accepts any reason, even an empty one; an acknowledgment is a security decision a reviewer
reads in the template metadata, so every reason is checked here: at least MIN_REASON_LENGTH
characters, and no stock phrase. Findings on one construct are acknowledged in one call, and the
resource texts of wildcard findings are resolved in one call: each call crosses into jsii, and synth
time is a budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

MIN_REASON_LENGTH = 40
VAGUE_REASONS = frozenset({"ok", "fine", "needed", "required", "by design", "false positive", "n/a", "todo"})


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one finding (`AwsSolutions-IAM5[Resource::...]`) on the narrowest construct."""
    acknowledge_all(scope, {finding: reason})


def acknowledge_all(scope: IConstruct, findings: Mapping[str, str]) -> None:
    """Acknowledge several findings on one construct: {finding id: specific reason}.

    Raises ValueError for a reason shorter than MIN_REASON_LENGTH characters or a stock phrase, and
    for a finding that is not a cdk-nag finding id.
    """
    acknowledgments = []
    for finding, reason in findings.items():
        text = reason.strip()
        if len(text) < MIN_REASON_LENGTH or text.lower().rstrip(".") in VAGUE_REASONS:
            raise ValueError(
                f"acknowledgment of {finding} on {scope.node.path} needs a specific reason (at least "
                f"{MIN_REASON_LENGTH} characters saying why the finding does not apply), got {reason!r}"
            )
        if "-" not in finding or " " in finding:
            raise ValueError(
                f"{finding!r} is not a cdk-nag finding id such as 'AwsSolutions-IAM5[Action::s3:*]'"
            )
        acknowledgments.append(cdk.Acknowledgment(id=finding, reason=text))
    cdk.Validations.of(scope).acknowledge(*acknowledgments)


def as_finding_texts(scope: IConstruct, values: Sequence[str]) -> list[str]:
    """(Token) strings as cdk-nag writes them in finding ids: `arn:aws:s3:::<Bucket1234.Arn>/x`."""

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

    return [render(resolved) for resolved in cdk.Stack.of(scope).resolve(list(values))]


def acknowledge_wildcard_resources(policy: IConstruct, resources: Mapping[str, str]) -> None:
    """Acknowledge `AwsSolutions-IAM5[Resource::...]` for each {resource ARN (may be a token): reason}."""
    texts = as_finding_texts(policy, list(resources))
    acknowledge_all(
        policy,
        {
            f"AwsSolutions-IAM5[Resource::{text}]": reason
            for text, reason in zip(texts, resources.values(), strict=True)
        },
    )


def prefix_objects(bucket: s3.IBucket, prefixes: Sequence[str], reason: str) -> dict[str, str]:
    """{object ARN pattern `bucket/prefix*`: reason} for `acknowledge_wildcard_resources`."""
    return {bucket.arn_for_objects(f"{prefix}*"): reason for prefix in prefixes}
