"""What every construct here does the same way: where its KMS key comes from, and reaching its L1."""

from __future__ import annotations

from typing import TypeVar

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from constructs import Construct, IConstruct

L1 = TypeVar("L1")


def key_or_new(
    scope: Construct, encryption_key: kms.IKey | None, *, purpose: str, removal_policy: cdk.RemovalPolicy
) -> kms.IKey:
    """The one rule for `encryption_key` in every construct: the key passed, else a new customer-
    managed key of the construct's own (yearly rotation; a DESTROY removal policy schedules its
    deletion after 7 days, the shortest window)."""
    if encryption_key is not None:
        return encryption_key
    destroy = removal_policy == cdk.RemovalPolicy.DESTROY
    return kms.Key(
        scope,
        "Key",
        description=f"Encrypts {purpose} of {scope.node.path}",
        enable_key_rotation=True,
        removal_policy=removal_policy,
        pending_window=cdk.Duration.days(7) if destroy else None,
    )


def default_child(construct: IConstruct, kind: type[L1]) -> L1:
    """The CloudFormation (L1) resource of an L2 construct, as `kind`; TypeError otherwise."""
    child = construct.node.default_child
    if not isinstance(child, kind):
        raise TypeError(
            f"{construct.node.path}: expected its default child to be {kind.__name__}, got {child!r}"
        )
    return child
