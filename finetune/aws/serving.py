"""Serving a fine-tuning's newest custom model, and taking the serving down again.

CloudFormation has no resource type for a provisioned throughput (PT) or an on-demand custom model
deployment (shared/bedrock-reference.md section 3), and a completion event may be missed (section 2).
So serving is a *reconciliation*: `reconcile()` looks at what exists and converges it to what the
`ServingSpec` asks for, and can run any number of times (a job event, a schedule, a deploy) with the
same result. `teardown()` removes everything that bills by the hour.

Decisions:
- Ownership. A resource belongs to a fine-tuning when its name matches the exact pattern this module
  gives it AND (for Bedrock resources) it carries the fine-tuning's tags (`identity.resource_tags`).
  A name prefix alone is ambiguous: `dev-support-` also starts `dev-support-bot-...`.
- Names. A PT is named `<env>-<ft>-pt-<8 hex>`, the hex a hash of (model units, commitment): a
  change of either needs a new PT (units and commitment cannot be updated), and gets a new name. The
  deployment is `<env>-<ft>-od`: it has no units or commitment, a new model is an update. With the
  config's limits (environment <= 16, fine-tuning <= 32 characters) both stay under Bedrock's 63.
- No gap. A newer model is swapped into the existing PT or deployment (`desiredModelId` /
  `modelArn`): no new commitment, no downtime. When a new PT or deployment is needed, the old
  no-commitment PT is deleted only once its replacement is in service; until then the report says
  so and the next reconcile (the schedule) finishes the job. `endpoint-arn` in SSM likewise names
  only an endpoint that serves.
- Commitments. A PT with a commitment whose term has not ended cannot be deleted; it is reported
  (name, ARN, expiry), never touched. A commitment whose expiry has passed is treated as deletable.
- Idempotency. Creates carry a `clientRequestToken` derived from the name and the model, so even a
  create that races another (a list that does not yet show the first) returns the same resource.
- Changes. Reports list what changed; writes that would not change anything (an SSM value, an
  existing alarm's settings) are made but not counted, so a scheduled run that finds everything in
  place reports no change.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, cast

from botocore.exceptions import ClientError

from finetune.aws import jobs
from finetune.core import names as identity

Mode = Literal["provisioned", "on_demand", "none"]
Commitment = Literal["none", "OneMonth", "SixMonths"]
MODES: tuple[Mode, ...] = ("provisioned", "on_demand", "none")
COMMITMENTS: tuple[Commitment, ...] = ("none", "OneMonth", "SixMonths")

# CloudWatch evaluates hourly alarms over at most 7 days (CloudWatch user guide, "Evaluating an
# alarm"); 0 switches the idle alarm off.
MAX_IDLE_ALARM_HOURS = 168
DEFAULT_IDLE_ALARM_HOURS = 24

# Bedrock's name pattern for PTs and deployments (botocore: ProvisionedModelName, ModelDeploymentName).
BEDROCK_NAME = re.compile(r"([0-9a-zA-Z][_-]?)+")
MAX_NAME_CHARS = 63

MODEL_ARN_PARAMETER = "custom-model-arn"
ENDPOINT_ARN_PARAMETER = "endpoint-arn"
SETTINGS_PARAMETER = "serving-settings"
MODEL_TAG = "finetune:custom-model-arn"

PT_READY = ("InService", "Updating")  # Updating: still serving the previous model
DEPLOYMENT_READY = ("Active",)
# Stack states after which no rollback follows (CloudFormation's StackStatus values).
STABLE_STACK_STATES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
)

NOT_FOUND = "ResourceNotFoundException"
CONFLICT = "ConflictException"
QUOTA = "ServiceQuotaExceededException"
# How Bedrock may refuse a second PT or deployment of a name in use (the code is not documented).
NAME_TAKEN = frozenset({"ValidationException", "ConflictException", "ResourceInUseException"})

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class ServingError(RuntimeError):
    """A serving step failed; the message says which, and what Bedrock said."""


class QuotaExceededError(ServingError):
    """Bedrock refused for lack of quota (model units start at 0 until AWS support raises them)."""


class TeardownIncompleteError(ServingError):
    """Something that bills by the hour is still there after the teardown's time ran out."""


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingSpec:
    """How one fine-tuning's newest custom model is to be served. Invalid values raise ValueError."""

    environment: str
    fine_tuning: str
    region: str
    mode: Mode = "none"
    model_units: int = 1
    commitment: Commitment = "none"
    idle_alarm_hours: int = DEFAULT_IDLE_ALARM_HOURS
    topic_arn: str | None = None
    # The environment's destroy rules, applied by `teardown`.
    stop_jobs_on_destroy: bool = False
    delete_models_on_destroy: bool = False
    # The stack, to buy a commitment only once no deploy can roll it back (DescribeStacks).
    stack_id: str | None = None

    def __post_init__(self) -> None:
        errors = []
        if not self.environment or not self.fine_tuning:
            errors.append("environment and fine_tuning must not be empty")
        if not self.region:
            errors.append("region must not be empty")
        if self.mode not in MODES:
            errors.append(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if self.commitment not in COMMITMENTS:
            errors.append(f"commitment: expected one of {', '.join(COMMITMENTS)}, got {self.commitment!r}")
        if (
            isinstance(self.model_units, bool)
            or not isinstance(self.model_units, int)
            or self.model_units < 1
        ):
            errors.append(f"model_units: expected a whole number >= 1, got {self.model_units!r}")
        hours = self.idle_alarm_hours
        if isinstance(hours, bool) or not isinstance(hours, int) or not 0 <= hours <= MAX_IDLE_ALARM_HOURS:
            errors.append(
                f"idle_alarm_hours: expected a whole number from 0 (no alarm) to {MAX_IDLE_ALARM_HOURS}, "
                f"got {hours!r}"
            )
        if not errors:
            for name in (throughput_name(self), deployment_name(self.environment, self.fine_tuning)):
                if len(name) > MAX_NAME_CHARS or not BEDROCK_NAME.fullmatch(name):
                    errors.append(
                        f"environment/fine_tuning give the Bedrock name {name!r}: it must match "
                        f"{BEDROCK_NAME.pattern} and have at most {MAX_NAME_CHARS} characters"
                    )
        if errors:
            raise ValueError("invalid serving settings: " + "; ".join(errors))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, topic_arn: str | None = None) -> ServingSpec:
        """From the JSON of the field names (FINETUNE_SERVING); `topic_arn` fills a missing topic."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"invalid serving settings: unknown keys {unknown}")
        fields = dict(values)
        fields["topic_arn"] = fields.get("topic_arn") or topic_arn or None
        return cls(**fields)

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any], *, topic_arn: str | None = None) -> ServingSpec:
        """From custom resource properties (CloudFormation hands every value over as a string)."""
        missing = [key for key in ("Environment", "FineTuning", "Region") if not properties.get(key)]
        if missing:
            raise ValueError(f"invalid serving settings: missing properties {missing}")
        return cls(
            environment=str(properties["Environment"]),
            fine_tuning=str(properties["FineTuning"]),
            region=str(properties["Region"]),
            mode=cast(Mode, str(properties.get("Mode", "none"))),
            model_units=_whole_number(properties.get("ModelUnits", 1), "ModelUnits"),
            commitment=cast(Commitment, str(properties.get("Commitment", "none"))),
            idle_alarm_hours=_whole_number(
                properties.get("IdleAlarmHours", DEFAULT_IDLE_ALARM_HOURS), "IdleAlarmHours"
            ),
            topic_arn=str(properties.get("TopicArn") or "") or topic_arn or None,
            stop_jobs_on_destroy=_flag(properties.get("StopJobsOnDestroy")),
            delete_models_on_destroy=_flag(properties.get("DeleteModelsOnDestroy")),
            stack_id=str(properties.get("StackId") or "") or None,
        )


def _flag(value: Any) -> bool:
    return str(value or "false").strip().lower() == "true"


def _whole_number(value: Any, key: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ValueError(f"invalid serving settings: {key}: expected a whole number, got {value!r}") from None


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------


def throughput_name(spec: ServingSpec) -> str:
    """`<env>-<ft>-pt-<8 hex of (units, commitment)>`: a change of either names a new PT."""
    digest = hashlib.sha256(f"{spec.model_units}:{spec.commitment}".encode()).hexdigest()[:8]
    return f"{spec.environment}-{spec.fine_tuning}-pt-{digest}"


def deployment_name(environment: str, fine_tuning: str) -> str:
    return f"{environment}-{fine_tuning}-od"


def alarm_name(environment: str, fine_tuning: str, throughput_arn: str) -> str:
    """One idle alarm per PT, named after the PT's id (the last part of its ARN)."""
    return f"{environment}-{fine_tuning}-pt-idle-{throughput_arn.rsplit('/', 1)[-1]}"


def _name_prefix(environment: str, fine_tuning: str) -> str:
    return f"{environment}-{fine_tuning}-"


def owns_job(environment: str, fine_tuning: str, job_name: str) -> bool:
    """True when `job_name` is one of this fine-tuning's jobs (`identity.owns_job`)."""
    return identity.owns_job(environment, fine_tuning, job_name)


def _owns_throughput_name(environment: str, fine_tuning: str, name: str) -> bool:
    return (
        re.fullmatch(rf"{re.escape(_name_prefix(environment, fine_tuning))}pt-[0-9a-f]{{8}}", name)
        is not None
    )


def _owns_alarm_name(environment: str, fine_tuning: str, name: str) -> bool:
    return (
        re.fullmatch(rf"{re.escape(_name_prefix(environment, fine_tuning))}pt-idle-[a-z0-9]+", name)
        is not None
    )


def creation_token(name: str, model_arn: str) -> str:
    """A clientRequestToken for ONE creation attempt (Bedrock pattern `[a-zA-Z0-9]([-a-zA-Z0-9]{0,254}
    [a-zA-Z0-9])?`). Bedrock answers a token it has seen with the resource it created then, even if
    that was deleted since: a token derived from the name and model alone would bring back a deleted
    PT after `none` and back, a redeploy or a rollback. A fresh nonce per attempt avoids that; a
    concurrent attempt is caught by the name instead (Bedrock refuses a second PT of the same name)."""
    return hashlib.sha256(f"{name}|{model_arn}|{uuid.uuid4().hex}".encode()).hexdigest()


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in sorted(tags.items())]


# --------------------------------------------------------------------------------------------------
# What exists
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clients:
    """The AWS clients serving needs (anything with boto3's method names)."""

    bedrock: Any
    ssm: Any
    cloudwatch: Any
    sns: Any
    cloudformation: Any = None  # only to check that no deploy is under way before buying a commitment


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
        return self.commitment_expires is None or _aware(self.commitment_expires) > now


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


def _aware(moment: datetime) -> datetime:
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


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)


def _fail(action: str, error: ClientError) -> ServingError:
    return ServingError(f"{action} failed: {_error_code(error)}: {_error_message(error)}")


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
            nameContains=_name_prefix(environment, fine_tuning),
            statusEquals="Completed",
        )
        if summary.get("status", "Completed") == "Completed"
        and owns_job(environment, fine_tuning, str(summary["jobName"]))
    ]
    candidates = [_model_ref(bedrock, summary) for summary in summaries]
    listed = {candidate.job_name for candidate in candidates}
    if (
        completed
        and owns_job(environment, fine_tuning, completed.job_name)
        and completed.job_name not in listed
    ):
        candidates.append(completed)
    if not candidates:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    return max(candidates, key=lambda ref: (_aware(ref.end_time) if ref.end_time else epoch, ref.job_name))


def _model_ref(bedrock: Any, summary: Mapping[str, Any]) -> ModelRef:
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


def model_from_event(detail: Mapping[str, Any]) -> ModelRef | None:
    """The model a Completed job event announces (None when the event names no output model)."""
    if (
        detail.get("jobStatus") != "Completed"
        or not detail.get("outputModelArn")
        or not detail.get("jobName")
    ):
        return None
    ended: datetime | None = None
    if isinstance(detail.get("endTime"), str):
        try:
            ended = datetime.fromisoformat(detail["endTime"])
        except ValueError:
            ended = None
    return ModelRef(
        job_name=str(detail["jobName"]),
        job_arn=str(detail.get("jobArn", "")),
        model_arn=str(detail["outputModelArn"]),
        end_time=ended or datetime.now(UTC),
    )


def _has_our_tags(bedrock: Any, arn: str, environment: str, fine_tuning: str) -> bool:
    tags = {
        tag["key"]: tag["value"] for tag in bedrock.list_tags_for_resource(resourceARN=arn).get("tags", [])
    }
    wanted = identity.resource_tags(environment, fine_tuning)
    return all(tags.get(key) == value for key, value in wanted.items())


def find_throughputs(bedrock: Any, environment: str, fine_tuning: str) -> list[Throughput]:
    """This fine-tuning's PTs: the name pattern matches and the tags say so."""
    found = []
    for summary in pages(
        bedrock.list_provisioned_model_throughputs,
        "provisionedModelSummaries",
        nameContains=_name_prefix(environment, fine_tuning) + "pt-",
    ):
        name, arn = str(summary["provisionedModelName"]), str(summary["provisionedModelArn"])
        if not _owns_throughput_name(environment, fine_tuning, name):
            continue
        if not _has_our_tags(bedrock, arn, environment, fine_tuning):
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
    name = deployment_name(environment, fine_tuning)
    found = []
    for summary in pages(
        bedrock.list_custom_model_deployments, "modelDeploymentSummaries", nameContains=name
    ):
        if summary["customModelDeploymentName"] != name:
            continue
        arn = str(summary["customModelDeploymentArn"])
        if not _has_our_tags(bedrock, arn, environment, fine_tuning):
            continue
        found.append(
            Deployment(name=name, arn=arn, model_arn=str(summary["modelArn"]), status=str(summary["status"]))
        )
    return found


# --------------------------------------------------------------------------------------------------
# Reconcile
# --------------------------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    """What `reconcile()` found and did; `changes` is empty when everything was in place.

    `endpoint_arn` is the endpoint the configuration asks for (it may still be coming up);
    `serving_arn` is the one that serves right now (the old PT while its replacement is created).
    `pending`: something is under way that a later pass finishes (`converge` waits for it).
    """

    spec: ServingSpec
    model: ModelRef | None = None
    deployed_job: str | None = None
    endpoint_arn: str | None = None
    endpoint_ready: bool = False
    serving_arn: str | None = None
    changes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    committed: list[CommittedThroughput] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pending: bool = False
    disabled: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.failures)

    def summary(self) -> str:
        """A message for people (the notification topic)."""
        spec = self.spec
        lines = [f"Fine-tuning {spec.fine_tuning} ({spec.environment}, {spec.region}):"]
        if self.model is None:
            lines.append("no completed customization job yet: nothing to serve.")
        else:
            job = f"job {self.model.job_name}" if self.model.job_name else "served before"
            lines.append(f"custom model: {self.model.model_arn} ({job}).")
            if spec.mode == "none":
                lines.append("serving mode 'none': the model is not served.")
            elif self.endpoint_arn:
                state = "serving" if self.endpoint_ready else "being prepared (not serving yet)"
                kind = "provisioned throughput" if spec.mode == "provisioned" else "on-demand deployment"
                lines.append(f"{kind} {self.endpoint_arn} is {state}.")
            lines.append(
                "SSM: "
                + identity.ssm_parameter_name(spec.environment, spec.fine_tuning, MODEL_ARN_PARAMETER)
                + ", "
                + identity.ssm_parameter_name(spec.environment, spec.fine_tuning, ENDPOINT_ARN_PARAMETER)
            )
        lines += [f"! {failure}" for failure in self.failures]
        lines += [f"- {change}" for change in self.changes]
        lines += [f"! {committed.describe()}" for committed in self.committed]
        lines += [f"* {note}" for note in self.notes]
        return "\n".join(lines)

    def as_log(self) -> dict[str, Any]:
        return {
            "environment": self.spec.environment,
            "fineTuning": self.spec.fine_tuning,
            "mode": self.spec.mode,
            "model": self.model.model_arn if self.model else None,
            "job": self.model.job_name if self.model else None,
            "deployedJob": self.deployed_job,
            "endpoint": self.endpoint_arn,
            "endpointReady": self.endpoint_ready,
            "serving": self.serving_arn,
            "changes": self.changes,
            "failures": self.failures,
            "committed": [committed.arn for committed in self.committed],
            "notes": self.notes,
            "pending": self.pending,
        }

    def fail(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)


def reconcile(
    clients: Clients,
    spec: ServingSpec,
    *,
    completed: ModelRef | None = None,
    now: datetime | None = None,
    deploying: bool = False,
    may_commit: bool = True,
) -> ReconcileReport:
    """Converge this fine-tuning's serving to `spec`, for the deployed job's model. Idempotent.

    `completed`: the model a completion event announced (the job list may not show it yet).
    `deploying`: run by the deploy itself (`Custom::ServingLifecycle`), which records the settings;
    any other run changes nothing once the settings are gone (serving torn down).
    `may_commit`: whether a PT with a commitment may be bought now (no deploy can roll back).
    """
    moment = now or datetime.now(UTC)
    report = ReconcileReport(spec=spec)
    if deploying:
        _put_parameter(clients.ssm, spec, SETTINGS_PARAMETER, settings_value(spec), _tags(spec), report)
    elif not serving_deployed(clients.ssm, spec):
        report.disabled = True
        report.notes.append("serving is not deployed (torn down, or not created yet): nothing was changed")
        return report
    model = model_to_serve(clients, spec, completed, report)
    if model is None:
        report.notes.append("no completed customization job to serve yet")
        return report
    report.model = model
    _put_parameter(clients.ssm, spec, MODEL_ARN_PARAMETER, model.model_arn, _tags(spec), report)

    throughputs = find_throughputs(clients.bedrock, spec.environment, spec.fine_tuning)
    deployments = find_deployments(clients.bedrock, spec.environment, spec.fine_tuning)
    kept: list[Throughput]
    if spec.mode == "provisioned":
        target = _serve_provisioned(clients.bedrock, spec, model, throughputs, report, may_commit)
        ready = target is not None and target.status in PT_READY
        others = [t for t in throughputs if target is None or t.arn != target.arn]
        label = target.name if target else throughput_name(spec)
        kept = _retire_throughputs(clients.bedrock, others, ready, label, moment, report)
        _remove_deployments(clients.bedrock, deployments, ready, label, report)
        if target is not None:
            kept.append(target)
            report.endpoint_arn, report.endpoint_ready = target.arn, ready
            report.pending = report.pending or not ready
    elif spec.mode == "on_demand":
        deployment = _serve_on_demand(clients.bedrock, spec, model, deployments, report)
        ready = deployment is not None and deployment.status in DEPLOYMENT_READY
        label = deployment.name if deployment else deployment_name(spec.environment, spec.fine_tuning)
        kept = _retire_throughputs(clients.bedrock, throughputs, ready, label, moment, report)
        if deployment is not None:
            report.endpoint_arn, report.endpoint_ready = deployment.arn, ready
            report.pending = report.pending or not ready
    else:
        kept = _retire_throughputs(clients.bedrock, throughputs, True, "", moment, report)
        _remove_deployments(clients.bedrock, deployments, True, "", report)

    _sync_alarms(clients.cloudwatch, spec, kept, report)
    report.serving_arn = _serving_now(report, kept, deployments)
    if spec.mode == "none":
        _delete_parameter(clients.ssm, spec, ENDPOINT_ARN_PARAMETER, report)
    elif report.endpoint_arn and report.endpoint_ready:
        _put_parameter(clients.ssm, spec, ENDPOINT_ARN_PARAMETER, report.endpoint_arn, _tags(spec), report)
    elif report.endpoint_arn:
        report.notes.append(
            f"{report.endpoint_arn} is not serving yet: the endpoint-arn parameter is written once it "
            "is (this run waits for it while its time allows, then the next reconcile)"
        )
    return report


def converge(
    clients: Clients,
    spec: ServingSpec,
    *,
    wait_seconds: float,
    poll_seconds: float = 15.0,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    **options: Any,
) -> ReconcileReport:
    """`reconcile`, then again every `poll_seconds` while something is under way (a PT coming up, a
    Failed one going) and `wait_seconds` allow, so a replaced PT stops billing within the same run
    instead of at the next hourly one. The report holds the changes and failures of every pass."""
    deadline = clock() + wait_seconds
    report = reconcile(clients, spec, **options)
    while report.pending and clock() + poll_seconds <= deadline:
        sleep(poll_seconds)
        again = reconcile(clients, spec, **options)
        again.changes[:0] = report.changes
        for failure in reversed(report.failures):
            if failure not in again.failures:
                again.failures.insert(0, failure)
        report = again
    return report


def _serving_now(
    report: ReconcileReport, kept: list[Throughput], deployments: list[Deployment]
) -> str | None:
    """The endpoint that serves right now: the target once ready, else one it is replacing."""
    if report.endpoint_arn and report.endpoint_ready:
        return report.endpoint_arn
    serving_throughputs = [t.arn for t in kept if t.status in PT_READY and t.arn != report.endpoint_arn]
    serving_deployments = [
        d.arn for d in deployments if d.status in DEPLOYMENT_READY and d.arn != report.endpoint_arn
    ]
    return next(iter(serving_throughputs + serving_deployments), None)


def _tags(spec: ServingSpec) -> dict[str, str]:
    return identity.resource_tags(spec.environment, spec.fine_tuning)


def settings_value(spec: ServingSpec) -> str:
    """The SETTINGS_PARAMETER value: what the deploy asked for (for people and `status`)."""
    return json.dumps(
        {"mode": spec.mode, "modelUnits": spec.model_units, "commitment": spec.commitment}, sort_keys=True
    )


def serving_deployed(ssm: Any, spec: ServingSpec) -> bool:
    """True while the deploy's settings are recorded: teardown removes them first, so a job event
    or schedule that runs during or after a teardown creates nothing that nobody would delete."""
    try:
        ssm.get_parameter(
            Name=identity.ssm_parameter_name(spec.environment, spec.fine_tuning, SETTINGS_PARAMETER)
        )
    except ClientError as error:
        if _error_code(error) == "ParameterNotFound":
            return False
        raise
    return True


def model_to_serve(
    clients: Clients, spec: ServingSpec, completed: ModelRef | None, report: ReconcileReport
) -> ModelRef | None:
    """The deployed job's model once it completed; until then the model served so far (or None).

    Never a job that merely ended later: a superseded or rolled-back configuration's job that
    finishes after the deployed one is not served. Without a record (a stack deployed by code that
    kept none), the newest completed job of the fine-tuning.
    """
    deployed = jobs.read_deployed_job(clients.ssm, spec.environment, spec.fine_tuning)
    if deployed is None:
        return latest_completed_model(
            clients.bedrock, spec.environment, spec.fine_tuning, completed=completed
        )
    report.deployed_job = deployed.job_name
    if completed is not None and completed.job_name == deployed.job_name:
        return completed
    found = jobs.find_job(clients.bedrock, deployed.job_name)
    if found is not None and found.status == jobs.COMPLETED:
        return _model_ref(clients.bedrock, {"jobName": found.job_name, "jobArn": found.job_arn})
    status = found.status if found is not None else "not found"
    served = _get_parameter(clients.ssm, spec, MODEL_ARN_PARAMETER)
    report.notes.append(
        f"the deployed job {deployed.job_name} is {status}: "
        + (f"the model served so far ({served}) stays" if served else "nothing to serve until it completes")
    )
    return ModelRef(job_name="", job_arn="", model_arn=served) if served else None


def stack_is_stable(cloudformation: Any, stack_id: str | None) -> bool:
    """True when the stack has finished its last deploy (no rollback can follow). False when it
    cannot be told: a commitment is then not bought, and the next run asks again."""
    if cloudformation is None or not stack_id:
        return False
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_id).get("Stacks") or []
    except ClientError:
        return False
    return bool(stacks) and str(stacks[0].get("StackStatus")) in STABLE_STACK_STATES


def _serve_provisioned(
    bedrock: Any,
    spec: ServingSpec,
    model: ModelRef,
    throughputs: list[Throughput],
    report: ReconcileReport,
    may_commit: bool,
) -> Throughput | None:
    """The PT the spec asks for, serving `model` (swapped in, or created); None while it cannot be
    (a Failed one is being deleted to be created again, or its commitment waits for the deploy)."""
    name = throughput_name(spec)
    for throughput in throughputs:
        if throughput.name != name:
            continue
        if throughput.status == "Failed":
            _replace_failed(
                report,
                f"provisioned throughput {name} ({throughput.arn})",
                partial(bedrock.get_provisioned_model_throughput, provisionedModelId=throughput.arn),
                partial(_delete_throughput, bedrock, throughput),
            )
            return None
        if throughput.model_arn != model.model_arn:
            try:
                bedrock.update_provisioned_model_throughput(
                    provisionedModelId=throughput.arn, desiredModelId=model.model_arn
                )
                bedrock.tag_resource(resourceARN=throughput.arn, tags=_tag_list({MODEL_TAG: model.model_arn}))
            except ClientError as error:
                raise _fail(f"updating provisioned throughput {name} to {model.model_arn}", error) from error
            report.changes.append(
                f"provisioned throughput {name} updated from {throughput.model_arn} to {model.model_arn} "
                "(same units and commitment, no gap)"
            )
        return throughput

    if spec.commitment != "none" and not may_commit:
        report.notes.append(
            f"provisioned throughput {name} has a {spec.commitment} commitment, which cannot be undone: "
            "it is bought only once the deploy is complete and can no longer roll back, by the next "
            "scheduled reconcile (within the hour)"
        )
        return None
    tags = {**_tags(spec), MODEL_TAG: model.model_arn}
    request: dict[str, Any] = {
        "modelUnits": spec.model_units,
        "provisionedModelName": name,
        "modelId": model.model_arn,
        "clientRequestToken": creation_token(name, model.model_arn),
        "tags": _tag_list(tags),
    }
    if spec.commitment != "none":
        request["commitmentDuration"] = spec.commitment
    try:
        arn = str(bedrock.create_provisioned_model_throughput(**request)["provisionedModelArn"])
    except ClientError as error:
        existing = _adopt_by_name(
            bedrock,
            spec,
            error,
            partial(bedrock.get_provisioned_model_throughput, provisionedModelId=name),
            "provisionedModelArn",
        )
        if existing is not None:
            report.notes.append(f"provisioned throughput {name} was created by a concurrent run: adopted")
            return Throughput(
                name=name,
                arn=str(existing["provisionedModelArn"]),
                model_arn=str(existing.get("desiredModelArn") or existing.get("modelArn") or model.model_arn),
                model_units=int(
                    existing.get("desiredModelUnits") or existing.get("modelUnits") or spec.model_units
                ),
                status=str(existing.get("status") or "Creating"),
                commitment=existing.get("commitmentDuration"),
                commitment_expires=existing.get("commitmentExpirationTime"),
            )
        if _error_code(error) == QUOTA:
            raise QuotaExceededError(
                f"Bedrock refused to create provisioned throughput {name} ({spec.model_units} model units, "
                f"commitment {spec.commitment}) for {model.model_arn} in {spec.region}: the account's "
                "model-unit quota is too low. Provisioned-throughput model units start at 0 until AWS "
                "support raises them: request them in Service Quotas / AWS Support for this model and "
                "region, or set serving.mode to 'on_demand' (where supported) or 'none'. Bedrock said: "
                f"{_error_message(error)}"
            ) from error
        raise _fail(f"creating provisioned throughput {name} for {model.model_arn}", error) from error
    created = _created(
        f"provisioned throughput {name}",
        arn,
        partial(bedrock.get_provisioned_model_throughput, provisionedModelId=arn),
    )
    report.changes.append(
        f"provisioned throughput {name} created: {spec.model_units} model units, commitment "
        f"{spec.commitment}, model {model.model_arn}"
    )
    return Throughput(
        name=name,
        arn=arn,
        model_arn=model.model_arn,
        model_units=spec.model_units,
        status=str(created.get("status") or "Creating"),
        commitment=None if spec.commitment == "none" else spec.commitment,
    )


def _adopt_by_name(
    bedrock: Any, spec: ServingSpec, error: ClientError, get: Callable[[], Mapping[str, Any]], arn_key: str
) -> Mapping[str, Any] | None:
    """After a refused create: the resource of that name when a concurrent run (an event and the
    schedule at once, a list that did not show it yet) created it first and it is ours; else None."""
    if _error_code(error) not in NAME_TAKEN:
        return None
    try:
        existing = get()
    except ClientError:
        return None
    if not _has_our_tags(bedrock, str(existing[arn_key]), spec.environment, spec.fine_tuning):
        return None
    return existing


def _created(what: str, arn: str, get: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    """The resource a create call answered with, checked to exist: a stale answer (a request token
    Bedrock had seen, whose resource was deleted since) must not pass for a new endpoint."""
    try:
        return get()
    except ClientError as error:
        if _error_code(error) == NOT_FOUND:
            raise ServingError(
                f"creating {what}: Bedrock answered with {arn}, which does not exist (a deleted "
                "resource of a reused request token); the next reconcile creates it with a new token"
            ) from error
        raise _fail(f"reading {what} ({arn}) after creating it", error) from error


def _replace_failed(
    report: ReconcileReport, label: str, get: Callable[[], Mapping[str, Any]], delete: Callable[[], bool]
) -> None:
    """A Failed PT or deployment serves nothing: say why (to the topic), delete it, and have it
    created again once it is gone (`pending`)."""
    try:
        reason = str(get().get("failureMessage") or "Bedrock gave no failure message")
    except ClientError as error:
        reason = f"its failure message could not be read ({_error_code(error)})"
    report.fail(f"{label} Failed: {reason}. It is deleted and created again.")
    if delete():
        report.changes.append(f"{label} (Failed) deleted")
    report.pending = True


def _serve_on_demand(
    bedrock: Any, spec: ServingSpec, model: ModelRef, deployments: list[Deployment], report: ReconcileReport
) -> Deployment | None:
    name = deployment_name(spec.environment, spec.fine_tuning)
    if deployments:
        deployment = deployments[0]
        if deployment.status == "Failed":
            _replace_failed(
                report,
                f"on-demand deployment {name} ({deployment.arn})",
                partial(bedrock.get_custom_model_deployment, customModelDeploymentIdentifier=deployment.arn),
                partial(_delete_deployment, bedrock, deployment),
            )
            return None
        if deployment.model_arn != model.model_arn and not _updating_to(bedrock, deployment, model):
            try:
                bedrock.update_custom_model_deployment(
                    customModelDeploymentIdentifier=deployment.arn, modelArn=model.model_arn
                )
            except ClientError as error:
                raise _fail(f"updating deployment {name} to {model.model_arn}", error) from error
            report.changes.append(
                f"on-demand deployment {name} updated from {deployment.model_arn} to {model.model_arn}"
            )
        return deployment
    tags = {**_tags(spec), MODEL_TAG: model.model_arn}
    try:
        arn = str(
            bedrock.create_custom_model_deployment(
                modelDeploymentName=name,
                modelArn=model.model_arn,
                description=f"On-demand serving of fine-tuning {spec.fine_tuning} ({spec.environment})",
                tags=_tag_list(tags),
                clientRequestToken=creation_token(name, model.model_arn),
            )["customModelDeploymentArn"]
        )
    except ClientError as error:
        existing = _adopt_by_name(
            bedrock,
            spec,
            error,
            partial(bedrock.get_custom_model_deployment, customModelDeploymentIdentifier=name),
            "customModelDeploymentArn",
        )
        if existing is not None:
            report.notes.append(f"on-demand deployment {name} was created by a concurrent run: adopted")
            return Deployment(
                name=name,
                arn=str(existing["customModelDeploymentArn"]),
                model_arn=str(existing.get("modelArn") or model.model_arn),
                status=str(existing.get("status") or "Creating"),
            )
        if _error_code(error) == QUOTA:
            raise QuotaExceededError(
                f"Bedrock refused to create on-demand deployment {name} for {model.model_arn}: a service "
                f"quota is exhausted in {spec.region}. Bedrock said: {_error_message(error)}"
            ) from error
        raise _fail(f"creating on-demand deployment {name} for {model.model_arn}", error) from error
    created = _created(
        f"on-demand deployment {name}",
        arn,
        partial(bedrock.get_custom_model_deployment, customModelDeploymentIdentifier=arn),
    )
    report.changes.append(f"on-demand deployment {name} created for {model.model_arn}")
    return Deployment(
        name=name, arn=arn, model_arn=model.model_arn, status=str(created.get("status") or "Creating")
    )


def _updating_to(bedrock: Any, deployment: Deployment, model: ModelRef) -> bool:
    """True when the deployment is already being (or has been) switched to `model`."""
    details = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=deployment.arn).get(
        "updateDetails"
    )
    return (
        bool(details)
        and details.get("modelArn") == model.model_arn
        and details.get("updateStatus")
        in (
            "Updating",
            "UpdateCompleted",
        )
    )


def _retire_throughputs(
    bedrock: Any,
    throughputs: list[Throughput],
    replacement_ready: bool,
    replacement: str,
    now: datetime,
    report: ReconcileReport,
) -> list[Throughput]:
    """Delete the no-commitment PTs once their replacement serves; returns the PTs that remain."""
    kept = []
    for throughput in throughputs:
        if throughput.is_committed(now):
            report.committed.append(
                CommittedThroughput(
                    throughput.name, throughput.arn, str(throughput.commitment), throughput.commitment_expires
                )
            )
            kept.append(throughput)
        elif not replacement_ready:
            report.notes.append(
                f"provisioned throughput {throughput.name} (no commitment, billed hourly) is deleted once "
                f"{replacement} serves (next reconcile)"
            )
            kept.append(throughput)
        elif _delete_throughput(bedrock, throughput):
            report.changes.append(f"provisioned throughput {throughput.name} ({throughput.arn}) deleted")
        else:
            report.notes.append(
                f"provisioned throughput {throughput.name} is busy and could not be deleted yet: the next "
                "reconcile tries again"
            )
            kept.append(throughput)
    return kept


def _request_deletion(delete: Callable[[], Any], what: str) -> bool:
    """True when deleted (or already gone); False on a conflict (busy: try again later)."""
    try:
        delete()
    except ClientError as error:
        code = _error_code(error)
        if code == NOT_FOUND:
            return True
        if code == CONFLICT:
            return False
        raise _fail(f"deleting {what}", error) from error
    return True


def _delete_throughput(bedrock: Any, throughput: Throughput) -> bool:
    return _request_deletion(
        partial(bedrock.delete_provisioned_model_throughput, provisionedModelId=throughput.arn),
        f"provisioned throughput {throughput.name} ({throughput.arn})",
    )


def _remove_deployments(
    bedrock: Any,
    deployments: list[Deployment],
    replacement_ready: bool,
    replacement: str,
    report: ReconcileReport,
) -> None:
    for deployment in deployments:
        if not replacement_ready:
            report.notes.append(
                f"on-demand deployment {deployment.name} is deleted once {replacement} serves"
            )
        elif _delete_deployment(bedrock, deployment):
            report.changes.append(f"on-demand deployment {deployment.name} ({deployment.arn}) deleted")
        else:
            report.notes.append(
                f"on-demand deployment {deployment.name} is busy: the next reconcile deletes it"
            )


def _delete_deployment(bedrock: Any, deployment: Deployment) -> bool:
    return _request_deletion(
        partial(bedrock.delete_custom_model_deployment, customModelDeploymentIdentifier=deployment.arn),
        f"on-demand deployment {deployment.name} ({deployment.arn})",
    )


# --------------------------------------------------------------------------------------------------
# SSM parameters and idle alarms
# --------------------------------------------------------------------------------------------------


def _get_parameter(ssm: Any, spec: ServingSpec, name: str) -> str | None:
    try:
        value = ssm.get_parameter(Name=identity.ssm_parameter_name(spec.environment, spec.fine_tuning, name))
    except ClientError as error:
        if _error_code(error) == "ParameterNotFound":
            return None
        raise
    return str(value["Parameter"]["Value"])


def _put_parameter(
    ssm: Any, spec: ServingSpec, name: str, value: str, tags: Mapping[str, str], report: ReconcileReport
) -> None:
    path = identity.ssm_parameter_name(spec.environment, spec.fine_tuning, name)
    current = _get_parameter(ssm, spec, name)
    if current is None:
        # SSM refuses Tags together with Overwrite: tag on creation only.
        ssm.put_parameter(
            Name=path,
            Value=value,
            Type="String",
            Tags=[{"Key": key, "Value": tag} for key, tag in sorted(tags.items())],
        )
        report.changes.append(f"SSM parameter {path} = {value}")
        return
    if current != value:
        ssm.put_parameter(Name=path, Value=value, Type="String", Overwrite=True)
        report.changes.append(f"SSM parameter {path} = {value} (was {current})")


def _delete_parameter(ssm: Any, spec: ServingSpec, name: str, report: ReconcileReport | None) -> None:
    path = identity.ssm_parameter_name(spec.environment, spec.fine_tuning, name)
    try:
        ssm.delete_parameter(Name=path)
    except ClientError as error:
        if _error_code(error) == "ParameterNotFound":
            return
        raise
    if report is not None:
        report.changes.append(f"SSM parameter {path} deleted")


def _existing_alarms(cloudwatch: Any, environment: str, fine_tuning: str) -> set[str]:
    names: set[str] = set()
    token: str | None = None
    while True:
        response = cloudwatch.describe_alarms(
            AlarmNamePrefix=_name_prefix(environment, fine_tuning) + "pt-idle-",
            AlarmTypes=["MetricAlarm"],
            **({"NextToken": token} if token else {}),
        )
        names |= {
            alarm["AlarmName"]
            for alarm in response.get("MetricAlarms", [])
            if _owns_alarm_name(environment, fine_tuning, alarm["AlarmName"])
        }
        token = response.get("NextToken")
        if not token:
            return names


def idle_alarm_request(spec: ServingSpec, throughput: Throughput) -> dict[str, Any]:
    """PutMetricAlarm arguments: no invocation of the PT for `idle_alarm_hours` whole hours."""
    hours = spec.idle_alarm_hours
    return {
        "AlarmName": alarm_name(spec.environment, spec.fine_tuning, throughput.arn),
        "AlarmDescription": (
            f"Provisioned throughput {throughput.name} ({throughput.arn}) had no invocation for {hours} "
            "hours. It bills every hour while it exists: delete it (serving.mode 'none') if unused."
        ),
        "Namespace": "AWS/Bedrock",
        "MetricName": "Invocations",
        "Dimensions": [{"Name": "ModelId", "Value": throughput.arn}],
        "Statistic": "Sum",
        "Period": 3600,
        "EvaluationPeriods": hours,
        "DatapointsToAlarm": hours,
        "Threshold": 0.0,
        "ComparisonOperator": "LessThanOrEqualToThreshold",
        "TreatMissingData": "breaching",  # an unused PT publishes no datapoint at all
        "ActionsEnabled": True,
        "AlarmActions": [spec.topic_arn] if spec.topic_arn else [],
        "Tags": [
            {"Key": key, "Value": value}
            for key, value in sorted(identity.resource_tags(spec.environment, spec.fine_tuning).items())
        ],
    }


def _sync_alarms(cloudwatch: Any, spec: ServingSpec, kept: list[Throughput], report: ReconcileReport) -> None:
    """One idle alarm per remaining PT; alarms of PTs that are gone are deleted."""
    existing = _existing_alarms(cloudwatch, spec.environment, spec.fine_tuning)
    wanted = set()
    if spec.idle_alarm_hours > 0:
        for throughput in kept:
            request = idle_alarm_request(spec, throughput)
            cloudwatch.put_metric_alarm(**request)
            wanted.add(request["AlarmName"])
            if request["AlarmName"] not in existing:
                report.changes.append(f"idle alarm {request['AlarmName']} created for {throughput.name}")
    stale = sorted(existing - wanted)
    if stale:
        cloudwatch.delete_alarms(AlarmNames=stale)
        report.changes += [f"idle alarm {name} deleted" for name in stale]


# --------------------------------------------------------------------------------------------------
# Teardown
# --------------------------------------------------------------------------------------------------


@dataclass
class TeardownReport:
    """What `teardown()` stopped and deleted, and which committed PTs AWS keeps billing."""

    environment: str
    fine_tuning: str
    deleted: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    committed: list[CommittedThroughput] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Fine-tuning {self.fine_tuning} ({self.environment}): serving torn down."]
        lines += [f"- stopped customization job {name}" for name in self.stopped]
        lines += [f"- deleted {name}" for name in self.deleted]
        lines += [f"! {committed.describe()}" for committed in self.committed]
        lines += [f"* kept {name}" for name in self.kept]
        return "\n".join(lines)


def teardown(
    clients: Clients,
    spec: ServingSpec,
    *,
    timeout_seconds: float = 600.0,
    poll_seconds: float = 15.0,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    now: datetime | None = None,
) -> TeardownReport:
    """Stop and delete what bills, in an order that lets nothing come back; raise if a deletion
    is not done within the timeout.

    1. The serving settings parameter goes first: a job event or schedule already under way then
       creates nothing (`serving_deployed`).
    2. With `spec.stop_jobs_on_destroy`, every running job of the fine-tuning is stopped (deploy and
       upload ones alike), so no completion arrives after the teardown.
    3. No-commitment PTs, the on-demand deployment, the idle alarms and the endpoint-arn parameter
       are deleted, and the teardown waits until Bedrock no longer knows them. Committed PTs cannot
       be deleted: they are reported with their expiry.
    4. With `spec.delete_models_on_destroy` (a `destroy` environment, whose key is deleted with the
       stack, leaving its models unreadable), the custom models and the remaining parameters are
       deleted too; otherwise models, the custom-model-arn and deployed-job parameters are kept.
    """
    environment, fine_tuning = spec.environment, spec.fine_tuning
    moment = now or datetime.now(UTC)
    deadline = clock() + timeout_seconds
    bedrock = clients.bedrock
    report = TeardownReport(environment=environment, fine_tuning=fine_tuning)
    _forget_parameter(clients.ssm, spec, SETTINGS_PARAMETER, None)
    if spec.stop_jobs_on_destroy:
        for job_name in jobs.running_jobs(bedrock, environment, fine_tuning):
            if jobs.stop_job_if_running(bedrock, job_name):
                report.stopped.append(job_name)

    pending: list[_PendingDeletion] = []
    for throughput in find_throughputs(bedrock, environment, fine_tuning):
        if throughput.is_committed(moment):
            report.committed.append(
                CommittedThroughput(
                    throughput.name, throughput.arn, str(throughput.commitment), throughput.commitment_expires
                )
            )
            continue
        pending.append(
            _PendingDeletion(
                label=f"provisioned throughput {throughput.name} ({throughput.arn})",
                delete=partial(_delete_throughput, bedrock, throughput),
                get=partial(bedrock.get_provisioned_model_throughput, provisionedModelId=throughput.arn),
            )
        )
    for deployment in find_deployments(bedrock, environment, fine_tuning):
        pending.append(
            _PendingDeletion(
                label=f"on-demand deployment {deployment.name} ({deployment.arn})",
                delete=partial(_delete_deployment, bedrock, deployment),
                get=partial(
                    bedrock.get_custom_model_deployment, customModelDeploymentIdentifier=deployment.arn
                ),
            )
        )

    alarms = sorted(_existing_alarms(clients.cloudwatch, environment, fine_tuning))
    if alarms:
        clients.cloudwatch.delete_alarms(AlarmNames=alarms)
        report.deleted += [f"idle alarm {name}" for name in alarms]
    _forget_parameter(clients.ssm, spec, ENDPOINT_ARN_PARAMETER, report)

    while True:
        for item in pending:
            item.accepted = item.accepted or item.delete()
            if item.accepted and _gone(item.get):
                report.deleted.append(item.label)
        pending = [item for item in pending if item.label not in report.deleted]
        if not pending:
            break
        if clock() >= deadline:
            raise TeardownIncompleteError(
                f"after {timeout_seconds:.0f} s these still exist and may keep billing: "
                + "; ".join(item.label for item in pending)
                + ". Delete them in the Bedrock console (Provisioned Throughput / Custom model deployments) "
                "or run the teardown again."
            )
        sleep(poll_seconds)

    if spec.delete_models_on_destroy and not report.committed:
        for model in find_custom_models(bedrock, environment, fine_tuning):
            if _request_deletion(
                partial(bedrock.delete_custom_model, modelIdentifier=model), f"custom model {model}"
            ):
                report.deleted.append(f"custom model {model}")
        for name in (MODEL_ARN_PARAMETER, jobs.DEPLOYED_JOB_PARAMETER):
            _forget_parameter(clients.ssm, spec, name, report)
    else:
        if spec.delete_models_on_destroy:
            report.kept.append("the custom models: a committed provisioned throughput still serves one")
        else:
            report.kept.append("the custom models, training data and the custom-model-arn parameter")
    return report


def find_custom_models(bedrock: Any, environment: str, fine_tuning: str) -> list[str]:
    """Names of this fine-tuning's custom models: named like their jobs and tagged for the stack."""
    names = []
    for summary in pages(
        bedrock.list_custom_models,
        "modelSummaries",
        nameContains=identity.job_name_prefix(environment, fine_tuning),
    ):
        name = str(summary.get("modelName", ""))
        if owns_job(environment, fine_tuning, name) and _has_our_tags(
            bedrock, str(summary["modelArn"]), environment, fine_tuning
        ):
            names.append(name)
    return sorted(names)


def _forget_parameter(ssm: Any, spec: ServingSpec, name: str, report: TeardownReport | None) -> None:
    path = identity.ssm_parameter_name(spec.environment, spec.fine_tuning, name)
    try:
        ssm.delete_parameter(Name=path)
    except ClientError as error:
        if _error_code(error) == "ParameterNotFound":
            return
        raise
    if report is not None:
        report.deleted.append(f"SSM parameter {path}")


@dataclass
class _PendingDeletion:
    """A resource teardown deletes: `delete()` is True once Bedrock accepted; `get()` raises when gone."""

    label: str
    delete: Callable[[], bool]
    get: Callable[[], Any]
    accepted: bool = False


def _gone(get: Callable[[], Any]) -> bool:
    try:
        get()
    except ClientError as error:
        if _error_code(error) == NOT_FOUND:
            return True
        raise
    return False


# --------------------------------------------------------------------------------------------------
# Job events
# --------------------------------------------------------------------------------------------------


def describe_failure(detail: Mapping[str, Any]) -> str:
    """A message for people about a Failed or Stopped customization job (an EventBridge `detail`)."""
    job = detail.get("jobName", "?")
    status = detail.get("jobStatus", "?")
    message = detail.get("failureMessage") or "Bedrock gave no failure message"
    lines = [f"Bedrock customization job {job} is {status}.", f"Reason: {message}"]
    if detail.get("jobArn"):
        lines.append(f"Job: {detail['jobArn']}")
    if status == "Stopped":
        lines.append(
            "A stopped job produced no custom model; the previous model (if any) keeps being served."
        )
    else:
        lines.append(
            "No custom model was produced; the previous model (if any) keeps being served. Fix the cause "
            "and deploy again to start a new job."
        )
    return "\n".join(lines)
