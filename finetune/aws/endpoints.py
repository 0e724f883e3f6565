"""What serves a fine-tuning's models: its provisioned throughputs (PT), its on-demand deployment
and its custom models, as Bedrock lists them, and the calls that create and delete them.

Ownership: a resource belongs to a fine-tuning when its name matches the exact pattern of
`finetune.core.names` AND it carries the fine-tuning's tags. A name prefix alone is ambiguous:
`dev-support-` also starts `dev-support-bot-...`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from finetune.aws.errors import error_code, error_message, is_not_found
from finetune.core import names

PT_READY = ("InService", "Updating")  # Updating: still serving the previous model


DEPLOYMENT_READY = ("Active",)


CONFLICT = "ConflictException"


QUOTA = "ServiceQuotaExceededException"


# How Bedrock may refuse a second PT or deployment of a name in use (the code is not documented).
NAME_TAKEN = frozenset({"ValidationException", "ConflictException", "ResourceInUseException"})


class ServingError(RuntimeError):
    """A serving step failed; the message says which, and what Bedrock said."""


class QuotaExceededError(ServingError):
    """Bedrock refused for lack of quota (model units start at 0 until AWS support raises them)."""


class TeardownIncompleteError(ServingError):
    """Something that bills by the hour is still there after the teardown's time ran out."""


def creation_token(name: str, model_arn: str) -> str:
    """A clientRequestToken for ONE creation attempt (Bedrock pattern `[a-zA-Z0-9]([-a-zA-Z0-9]{0,254}
    [a-zA-Z0-9])?`). Bedrock answers a token it has seen with the resource it created then, even if
    that was deleted since: a token derived from the name and model alone would bring back a deleted
    PT after `none` and back, a redeploy or a rollback. A fresh nonce per attempt avoids that; a
    concurrent attempt is caught by the name instead (Bedrock refuses a second PT of the same name)."""
    return hashlib.sha256(f"{name}|{model_arn}|{uuid.uuid4().hex}".encode()).hexdigest()


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in sorted(tags.items())]


@dataclass(frozen=True)
class Clients:
    """The AWS clients serving needs (anything with boto3's method names)."""

    bedrock: Any
    ssm: Any
    cloudwatch: Any
    sns: Any
    cloudformation: Any = None  # only to check that no deploy is under way before buying a commitment
    s3: Any = None  # the evaluation gate only: datasets, results and generated responses
    runtime: Any = None  # the evaluation gate only: bedrock-runtime, to generate a deployment's responses


@dataclass(frozen=True)
class ModelRef:
    """A completed customization job and the custom model it produced."""

    job_name: str
    job_arn: str
    model_arn: str
    end_time: datetime | None = None


@dataclass(frozen=True)
class Throughput:
    """One of the fine-tuning's provisioned throughputs, as Bedrock lists it."""

    name: str
    arn: str
    model_arn: str  # the desired model: the one it serves once an update is through
    model_units: int
    status: str
    commitment: str | None = None
    commitment_expires: datetime | None = None

    def is_committed(self, now: datetime) -> bool:
        """True while a commitment term runs: AWS refuses to delete it and keeps billing it."""
        if not self.commitment:
            return False
        return self.commitment_expires is None or aware(self.commitment_expires) > now


@dataclass(frozen=True)
class Deployment:
    """The fine-tuning's on-demand custom model deployment."""

    name: str
    arn: str
    model_arn: str
    status: str


@dataclass(frozen=True)
class CommittedThroughput:
    """A PT that AWS keeps billing until its commitment term ends: reported, never deleted."""

    name: str
    arn: str
    commitment: str
    expires: datetime | None

    def describe(self) -> str:
        until = self.expires.isoformat() if self.expires else "the end of its term (expiry not reported)"
        return (
            f"provisioned throughput {self.name} ({self.arn}) has a {self.commitment} commitment: AWS "
            f"keeps billing it until {until} and refuses to delete it before then; delete it by hand "
            "after that"
        )


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def pages(call: Callable[..., Mapping[str, Any]], key: str, **kwargs: Any) -> Iterator[Mapping[str, Any]]:
    """Every item of a paginated Bedrock list call (by nextToken: works on fakes without paginators)."""
    token: str | None = None
    while True:
        response = call(**kwargs, **({"nextToken": token} if token else {}))
        yield from response.get(key) or []
        token = response.get("nextToken")
        if not token:
            return


def serving_error(action: str, error: ClientError) -> ServingError:
    return ServingError(f"{action} failed: {error_code(error)}: {error_message(error)}")


def latest_completed_model(
    bedrock: Any, environment: str, fine_tuning: str, *, completed: ModelRef | None = None
) -> ModelRef | None:
    """The newest (by endTime) Completed customization job of this fine-tuning, or None.

    `completed` is a job a completion event just announced: considered even when the list does not
    show it yet (the list is eventually consistent; the event may be faster).
    """
    summaries = [
        summary
        for summary in pages(
            bedrock.list_model_customization_jobs,
            "modelCustomizationJobSummaries",
            nameContains=names.job_name_prefix(environment, fine_tuning),
            statusEquals="Completed",
        )
        if summary.get("status", "Completed") == "Completed"
        and names.owns_job(environment, fine_tuning, str(summary["jobName"]))
    ]
    candidates = [model_ref(bedrock, summary) for summary in summaries]
    listed = {candidate.job_name for candidate in candidates}
    if (
        completed
        and names.owns_job(environment, fine_tuning, completed.job_name)
        and completed.job_name not in listed
    ):
        candidates.append(completed)
    if not candidates:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    return max(candidates, key=lambda ref: (aware(ref.end_time) if ref.end_time else epoch, ref.job_name))


def model_ref(bedrock: Any, summary: Mapping[str, Any]) -> ModelRef:
    model_arn = summary.get("customModelArn")
    if not model_arn:  # the list may omit it; the job itself names its output model
        job = bedrock.get_model_customization_job(jobIdentifier=summary["jobName"])
        model_arn = job.get("outputModelArn")
    if not model_arn:
        raise ServingError(f"customization job {summary['jobName']} is Completed but names no output model")
    ended = summary.get("endTime") or summary.get("creationTime")
    return ModelRef(
        job_name=str(summary["jobName"]),
        job_arn=str(summary["jobArn"]),
        model_arn=str(model_arn),
        end_time=ended if isinstance(ended, datetime) else None,
    )


def has_our_tags(bedrock: Any, arn: str, environment: str, fine_tuning: str) -> bool:
    tags = {
        tag["key"]: tag["value"] for tag in bedrock.list_tags_for_resource(resourceARN=arn).get("tags", [])
    }
    wanted = names.resource_tags(environment, fine_tuning)
    return all(tags.get(key) == value for key, value in wanted.items())


def find_throughputs(bedrock: Any, environment: str, fine_tuning: str) -> list[Throughput]:
    """This fine-tuning's PTs: the name pattern matches and the tags say so."""
    found = []
    for summary in pages(
        bedrock.list_provisioned_model_throughputs,
        "provisionedModelSummaries",
        nameContains=names.throughput_name_prefix(environment, fine_tuning),
    ):
        name, arn = str(summary["provisionedModelName"]), str(summary["provisionedModelArn"])
        if not names.owns_throughput_name(environment, fine_tuning, name):
            continue
        if not has_our_tags(bedrock, arn, environment, fine_tuning):
            continue
        found.append(
            Throughput(
                name=name,
                arn=arn,
                model_arn=str(summary.get("desiredModelArn") or summary["modelArn"]),
                model_units=int(summary.get("desiredModelUnits") or summary["modelUnits"]),
                status=str(summary["status"]),
                commitment=summary.get("commitmentDuration"),
                commitment_expires=summary.get("commitmentExpirationTime"),
            )
        )
    return sorted(found, key=lambda throughput: throughput.name)


def find_deployments(bedrock: Any, environment: str, fine_tuning: str) -> list[Deployment]:
    """This fine-tuning's on-demand deployment (a list: a leftover duplicate is cleaned up too)."""
    name = names.deployment_name(environment, fine_tuning)
    found = []
    for summary in pages(
        bedrock.list_custom_model_deployments, "modelDeploymentSummaries", nameContains=name
    ):
        if summary["customModelDeploymentName"] != name:
            continue
        arn = str(summary["customModelDeploymentArn"])
        if not has_our_tags(bedrock, arn, environment, fine_tuning):
            continue
        found.append(
            Deployment(name=name, arn=arn, model_arn=str(summary["modelArn"]), status=str(summary["status"]))
        )
    return found


def find_custom_models(bedrock: Any, environment: str, fine_tuning: str) -> list[str]:
    """Names of this fine-tuning's custom models: named like their jobs and tagged for the stack."""
    found = []
    for summary in pages(
        bedrock.list_custom_models,
        "modelSummaries",
        nameContains=names.job_name_prefix(environment, fine_tuning),
    ):
        name = str(summary.get("modelName", ""))
        if names.owns_job(environment, fine_tuning, name) and has_our_tags(
            bedrock, str(summary["modelArn"]), environment, fine_tuning
        ):
            found.append(name)
    return sorted(found)


def request_deletion(delete: Callable[[], Any], what: str) -> bool:
    """True when deleted (or already gone); False on a conflict (busy: try again later)."""
    try:
        delete()
    except ClientError as error:
        if is_not_found(error):
            return True
        if error_code(error) == CONFLICT:
            return False
        raise serving_error(f"deleting {what}", error) from error
    return True


def delete_throughput(bedrock: Any, throughput: Throughput) -> bool:
    return request_deletion(
        partial(bedrock.delete_provisioned_model_throughput, provisionedModelId=throughput.arn),
        f"provisioned throughput {throughput.name} ({throughput.arn})",
    )


def delete_deployment(bedrock: Any, deployment: Deployment) -> bool:
    return request_deletion(
        partial(bedrock.delete_custom_model_deployment, customModelDeploymentIdentifier=deployment.arn),
        f"on-demand deployment {deployment.name} ({deployment.arn})",
    )


def adopt_by_name(
    bedrock: Any,
    environment: str,
    fine_tuning: str,
    error: ClientError,
    get: Callable[[], Mapping[str, Any]],
    arn_key: str,
) -> Mapping[str, Any] | None:
    """After a refused create: the resource of that name when a concurrent run (an event and the
    schedule at once, a list that did not show it yet) created it first and it is ours; else None."""
    if error_code(error) not in NAME_TAKEN:
        return None
    try:
        existing = get()
    except ClientError:
        return None
    if not has_our_tags(bedrock, str(existing[arn_key]), environment, fine_tuning):
        return None
    return existing


def check_created(what: str, arn: str, get: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    """The resource a create call answered with, checked to exist: a stale answer (a request token
    Bedrock had seen, whose resource was deleted since) must not pass for a new endpoint."""
    try:
        return get()
    except ClientError as error:
        if is_not_found(error):
            raise ServingError(
                f"creating {what}: Bedrock answered with {arn}, which does not exist (a deleted "
                "resource of a reused request token); the next reconcile creates it with a new token"
            ) from error
        raise serving_error(f"reading {what} ({arn}) after creating it", error) from error
