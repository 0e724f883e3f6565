"""Serving the deployed job's custom model, and taking the serving down again.

CloudFormation has no resource type for a provisioned throughput (PT) or an on-demand custom model
deployment, and a completion event may be missed (Bedrock emits events on a best-effort basis:
https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge.html).
So serving is a *reconciliation*: `reconcile()` looks at what exists and converges it to what the
`ServingResource` asks for, and can run any number of times (a job event, a schedule, a deploy) with the
same result. `teardown()` removes everything that bills by the hour.

Decisions:
- Ownership. A resource belongs to a fine-tuning when its name matches the exact pattern this module
  gives it AND (for Bedrock resources) it carries the fine-tuning's tags (`names.resource_tags`).
  A name prefix alone is ambiguous: `dev-support-` also starts `dev-support-bot-...`.
- Names: `finetune.core.names` (a PT per (units, commitment), one deployment per fine-tuning).
- No gap. A newer model is swapped into the existing PT or deployment (`desiredModelId` /
  `modelArn`): no new commitment, no downtime. When a new PT or deployment is needed, the old
  no-commitment PT is deleted only once its replacement is in service; until then the report says
  so, and `converge` waits for it while the run's time allows. `endpoint-arn` in SSM names only an
  endpoint that serves.
- Commitments. A PT with a commitment whose term has not ended cannot be deleted; it is reported
  (name, ARN, expiry), never touched. A commitment whose expiry has passed is treated as deletable.
- Idempotency. A create that races another (an event and the schedule, a list that does not show
  the first yet) is refused on the name, and the resource of that name is adopted. Each creation
  attempt has its own token (`creation_token`).
- Changes. Reports list what changed; writes that would not change anything (an SSM value, an
  existing alarm's settings) are made but not counted, so a scheduled run that finds everything in
  place reports no change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from finetune.aws import jobs, parameters
from finetune.aws.endpoints import (
    DEPLOYMENT_READY,
    PT_READY,
    QUOTA,
    Clients,
    CommittedThroughput,
    Deployment,
    ModelRef,
    QuotaExceededError,
    Throughput,
    adopt_by_name,
    check_created,
    creation_token,
    delete_deployment,
    delete_throughput,
    find_deployments,
    find_throughputs,
    latest_completed_model,
    model_ref,
    serving_error,
    tag_list,
)
from finetune.aws.errors import error_code, error_message
from finetune.aws.idle_alarms import sync_alarms
from finetune.core import names
from finetune.core.contracts import ServingResource

# Stack states after which no rollback follows (CloudFormation's StackStatus values).
STABLE_STACK_STATES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
)


if TYPE_CHECKING:
    from finetune.aws import trials

# finetune.aws.trials (the evaluation gate) is imported by the functions that need it: only a gated
# fine-tuning's function pays for loading it at a cold start.

Clock = Callable[[], float]


Sleep = Callable[[float], None]


def throughput_name(spec: ServingResource) -> str:
    return names.throughput_name(
        spec.environment, spec.fine_tuning, spec.settings.model_units, spec.settings.commitment
    )


@dataclass
class ReconcileReport:
    """What `reconcile()` found and did; `changes` is empty when everything was in place.

    `endpoint_arn` is the endpoint the configuration asks for (it may still be coming up);
    `serving_arn` is the one that serves right now (the old PT while its replacement is created).
    `pending`: something is under way that a later pass finishes (`converge` waits for it).
    """

    spec: ServingResource
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
    gate: trials.GateReport | None = None  # the evaluation gate's run, for a gated fine-tuning

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.failures)

    def summary(self) -> str:
        """A message for people (the notification topic)."""
        spec = self.spec
        lines = [f"Fine-tuning {spec.fine_tuning} ({spec.environment}, {spec.region}):"]
        if self.model is None and self.gate is not None:
            lines.append("no model has passed the evaluation gate yet: nothing to serve.")
        elif self.model is None:
            lines.append("no completed customization job yet: nothing to serve.")
        else:
            job = f"job {self.model.job_name}" if self.model.job_name else "served before"
            lines.append(f"custom model: {self.model.model_arn} ({job}).")
            if spec.settings.mode == "none":
                lines.append("serving mode 'none': the model is not served.")
            elif self.endpoint_arn:
                state = "serving" if self.endpoint_ready else "being prepared (not serving yet)"
                kind = (
                    "provisioned throughput"
                    if spec.settings.mode == "provisioned"
                    else "on-demand deployment"
                )
                lines.append(f"{kind} {self.endpoint_arn} is {state}.")
            lines.append(
                "SSM: "
                + names.ssm_parameter_name(spec.environment, spec.fine_tuning, names.MODEL_ARN_PARAMETER)
                + ", "
                + names.ssm_parameter_name(spec.environment, spec.fine_tuning, names.ENDPOINT_ARN_PARAMETER)
            )
        lines += [f"! {failure}" for failure in self.failures]
        lines += [f"- {change}" for change in self.changes]
        lines += [f"! {committed.describe()}" for committed in self.committed]
        lines += [f"* {note}" for note in self.notes]
        if self.gate is not None:
            lines += ["", self.gate.summary()]
        return "\n".join(lines)

    def as_log(self) -> dict[str, Any]:
        return {
            "environment": self.spec.environment,
            "fineTuning": self.spec.fine_tuning,
            "mode": self.spec.settings.mode,
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
            **({"gate": self.gate.states} if self.gate is not None else {}),
        }

    def fail(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)


def reconcile(
    clients: Clients,
    spec: ServingResource,
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
        _write(clients.ssm, spec, names.SETTINGS_PARAMETER, settings_value(spec), report)
    elif not serving_deployed(clients.ssm, spec):
        report.disabled = True
        report.notes.append("serving is not deployed (torn down, or not created yet): nothing was changed")
        return report
    if spec.gate is not None:
        model = gated_model(clients, spec, moment, report)
    else:
        model = model_to_serve(clients, spec, completed, report)
    if model is None:
        if spec.gate is None:
            report.notes.append("no completed customization job to serve yet")
        else:  # the gate's temporary PTs have idle alarms too, and what served before keeps its own
            serving_now = find_throughputs(clients.bedrock, spec.environment, spec.fine_tuning)
            report.changes += sync_alarms(
                clients.cloudwatch, spec, serving_now, _temporary_throughputs(clients, spec)
            )
        return report
    report.model = model
    _write(clients.ssm, spec, names.MODEL_ARN_PARAMETER, model.model_arn, report)

    throughputs = find_throughputs(clients.bedrock, spec.environment, spec.fine_tuning)
    deployments = find_deployments(clients.bedrock, spec.environment, spec.fine_tuning)
    kept: list[Throughput]
    if spec.settings.mode == "provisioned":
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
    elif spec.settings.mode == "on_demand":
        deployment = _serve_on_demand(clients.bedrock, spec, model, deployments, report)
        ready = deployment is not None and deployment.status in DEPLOYMENT_READY
        label = deployment.name if deployment else names.deployment_name(spec.environment, spec.fine_tuning)
        kept = _retire_throughputs(clients.bedrock, throughputs, ready, label, moment, report)
        if deployment is not None:
            report.endpoint_arn, report.endpoint_ready = deployment.arn, ready
            report.pending = report.pending or not ready
    else:
        kept = _retire_throughputs(clients.bedrock, throughputs, True, "", moment, report)
        _remove_deployments(clients.bedrock, deployments, True, "", report)

    report.changes += sync_alarms(clients.cloudwatch, spec, kept, _temporary_throughputs(clients, spec))
    report.serving_arn = _serving_now(report, kept, deployments)
    if spec.settings.mode == "none":
        _erase(clients.ssm, spec, names.ENDPOINT_ARN_PARAMETER, report)
    elif report.endpoint_arn and report.endpoint_ready:
        _write(clients.ssm, spec, names.ENDPOINT_ARN_PARAMETER, report.endpoint_arn, report)
    elif report.endpoint_arn:
        report.notes.append(
            f"{report.endpoint_arn} is not serving yet: the endpoint-arn parameter is written once it "
            "is (this run waits for it while its time allows, then the next reconcile)"
        )
    return report


def _temporary_throughputs(clients: Clients, spec: ServingResource) -> list[Throughput]:
    """The evaluation gate's temporary PTs, for their idle alarms (deployments bill per token)."""
    if spec.gate is None:
        return []
    from finetune.aws import trials

    return [
        Throughput(
            endpoint.name, endpoint.arn, endpoint.model_arn, trials.TEMPORARY_MODEL_UNITS, endpoint.status
        )
        for endpoint in trials.find_temporary_endpoints(clients.bedrock, spec.environment, spec.fine_tuning)
        if endpoint.kind == trials.PROVISIONED
    ]


def converge(
    clients: Clients,
    spec: ServingResource,
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


def settings_value(spec: ServingResource) -> str:
    """The names.SETTINGS_PARAMETER value: what the deploy asked for (for people and `status`)."""
    return json.dumps(
        {
            "mode": spec.settings.mode,
            "modelUnits": spec.settings.model_units,
            "commitment": spec.settings.commitment,
        },
        sort_keys=True,
    )


def serving_deployed(ssm: Any, spec: ServingResource) -> bool:
    """True while the deploy's settings are recorded: teardown removes them first, so a job event
    or schedule that runs during or after a teardown creates nothing that nobody would delete."""
    return parameters.get(ssm, spec.environment, spec.fine_tuning, names.SETTINGS_PARAMETER) is not None


def _write(ssm: Any, spec: ServingResource, name: str, value: str, report: ReconcileReport) -> None:
    change = parameters.put(ssm, spec.environment, spec.fine_tuning, name, value)
    if change:
        report.changes.append(change)


def _erase(ssm: Any, spec: ServingResource, name: str, report: ReconcileReport) -> None:
    change = parameters.delete(ssm, spec.environment, spec.fine_tuning, name)
    if change:
        report.changes.append(change)


def model_to_serve(
    clients: Clients, spec: ServingResource, completed: ModelRef | None, report: ReconcileReport
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
        return model_ref(clients.bedrock, {"jobName": found.job_name, "jobArn": found.job_arn})
    status = found.status if found is not None else "not found"
    served = parameters.get(clients.ssm, spec.environment, spec.fine_tuning, names.MODEL_ARN_PARAMETER)
    report.notes.append(
        f"the deployed job {deployed.job_name} is {status}: "
        + (f"the model served so far ({served}) stays" if served else "nothing to serve until it completes")
    )
    return ModelRef(job_name="", job_arn="", model_arn=served) if served else None


def gated_model(
    clients: Clients, spec: ServingResource, now: datetime, report: ReconcileReport
) -> ModelRef | None:
    """The evaluation gate's winner, once the gate (`finetune.aws.trials`) has named one.

    Each run moves the gate on first (temporary endpoints, evaluations, verdicts) and tells people
    what it decided. Until a winner is named nothing new is served; a model served before (an
    earlier winner) stays until then. A gate that no trial passed serves nothing new, ever, for
    these jobs: the message says which metric missed by how much.
    """
    from finetune.aws import trials

    gate = trials.reconcile_gate(
        trials.GateClients.of(clients, s3=clients.s3, runtime=clients.runtime),
        trials.deployed_gate(clients.ssm, spec),
        now=now,
    )
    trials.publish_messages(clients.sns, gate)
    report.changes += gate.changes
    for failure in gate.failures:
        report.fail(f"evaluation gate: {failure}")
    report.gate = gate
    if gate.winner is not None and gate.winner_model_arn:
        record = gate.trials.get(gate.winner.name)
        return ModelRef(
            job_name=record.job_name if record else "", job_arn="", model_arn=gate.winner_model_arn
        )
    states = ", ".join(f"{name} {state}" for name, state in gate.states.items())
    served = parameters.get(clients.ssm, spec.environment, spec.fine_tuning, names.MODEL_ARN_PARAMETER)
    why = "no trial passed" if gate.finished else f"trials: {states}"
    report.notes.append(
        f"evaluation gate: no winner ({why}): "
        + (f"the model served so far ({served}) stays" if served else "nothing is served")
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
    spec: ServingResource,
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
                partial(delete_throughput, bedrock, throughput),
            )
            return None
        if throughput.model_arn != model.model_arn:
            try:
                bedrock.update_provisioned_model_throughput(
                    provisionedModelId=throughput.arn, desiredModelId=model.model_arn
                )
                bedrock.tag_resource(
                    resourceARN=throughput.arn, tags=tag_list({names.MODEL_TAG: model.model_arn})
                )
            except ClientError as error:
                raise serving_error(
                    f"updating provisioned throughput {name} to {model.model_arn}", error
                ) from error
            report.changes.append(
                f"provisioned throughput {name} updated from {throughput.model_arn} to {model.model_arn} "
                "(same units and commitment, no gap)"
            )
        return throughput

    if spec.settings.commitment != "none" and not may_commit:
        report.notes.append(
            f"provisioned throughput {name} has a {spec.settings.commitment} commitment, which cannot be undone: "
            "it is bought only once the deploy is complete and can no longer roll back, by the next "
            "scheduled reconcile (within the hour)"
        )
        return None
    tags = {**names.resource_tags(spec.environment, spec.fine_tuning), names.MODEL_TAG: model.model_arn}
    request: dict[str, Any] = {
        "modelUnits": spec.settings.model_units,
        "provisionedModelName": name,
        "modelId": model.model_arn,
        "clientRequestToken": creation_token(name, model.model_arn),
        "tags": tag_list(tags),
    }
    if spec.settings.commitment != "none":
        request["commitmentDuration"] = spec.settings.commitment
    try:
        arn = str(bedrock.create_provisioned_model_throughput(**request)["provisionedModelArn"])
    except ClientError as error:
        existing = adopt_by_name(
            bedrock,
            spec.environment,
            spec.fine_tuning,
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
                    existing.get("desiredModelUnits")
                    or existing.get("modelUnits")
                    or spec.settings.model_units
                ),
                status=str(existing.get("status") or "Creating"),
                commitment=existing.get("commitmentDuration"),
                commitment_expires=existing.get("commitmentExpirationTime"),
            )
        if error_code(error) == QUOTA:
            raise QuotaExceededError(
                f"Bedrock refused to create provisioned throughput {name} ({spec.settings.model_units} model units, "
                f"commitment {spec.settings.commitment}) for {model.model_arn} in {spec.region}: the account's "
                "model-unit quota is too low. Provisioned-throughput model units start at 0 until AWS "
                "support raises them: request them in Service Quotas / AWS Support for this model and "
                "region, or set serving.mode to 'on_demand' (where supported) or 'none'. Bedrock said: "
                f"{error_message(error)}"
            ) from error
        raise serving_error(f"creating provisioned throughput {name} for {model.model_arn}", error) from error
    created = check_created(
        f"provisioned throughput {name}",
        arn,
        partial(bedrock.get_provisioned_model_throughput, provisionedModelId=arn),
    )
    report.changes.append(
        f"provisioned throughput {name} created: {spec.settings.model_units} model units, commitment "
        f"{spec.settings.commitment}, model {model.model_arn}"
    )
    return Throughput(
        name=name,
        arn=arn,
        model_arn=model.model_arn,
        model_units=spec.settings.model_units,
        status=str(created.get("status") or "Creating"),
        commitment=None if spec.settings.commitment == "none" else spec.settings.commitment,
    )


def _replace_failed(
    report: ReconcileReport, label: str, get: Callable[[], Mapping[str, Any]], delete: Callable[[], bool]
) -> None:
    """A Failed PT or deployment serves nothing: say why (to the topic), delete it, and have it
    created again once it is gone (`pending`)."""
    try:
        reason = str(get().get("failureMessage") or "Bedrock gave no failure message")
    except ClientError as error:
        reason = f"its failure message could not be read ({error_code(error)})"
    report.fail(f"{label} Failed: {reason}. It is deleted and created again.")
    if delete():
        report.changes.append(f"{label} (Failed) deleted")
    report.pending = True


def _serve_on_demand(
    bedrock: Any,
    spec: ServingResource,
    model: ModelRef,
    deployments: list[Deployment],
    report: ReconcileReport,
) -> Deployment | None:
    name = names.deployment_name(spec.environment, spec.fine_tuning)
    if deployments:
        deployment = deployments[0]
        if deployment.status == "Failed":
            _replace_failed(
                report,
                f"on-demand deployment {name} ({deployment.arn})",
                partial(bedrock.get_custom_model_deployment, customModelDeploymentIdentifier=deployment.arn),
                partial(delete_deployment, bedrock, deployment),
            )
            return None
        if deployment.model_arn != model.model_arn and not _updating_to(bedrock, deployment, model):
            try:
                bedrock.update_custom_model_deployment(
                    customModelDeploymentIdentifier=deployment.arn, modelArn=model.model_arn
                )
            except ClientError as error:
                raise serving_error(f"updating deployment {name} to {model.model_arn}", error) from error
            report.changes.append(
                f"on-demand deployment {name} updated from {deployment.model_arn} to {model.model_arn}"
            )
        return deployment
    tags = {**names.resource_tags(spec.environment, spec.fine_tuning), names.MODEL_TAG: model.model_arn}
    try:
        arn = str(
            bedrock.create_custom_model_deployment(
                modelDeploymentName=name,
                modelArn=model.model_arn,
                description=f"On-demand serving of fine-tuning {spec.fine_tuning} ({spec.environment})",
                tags=tag_list(tags),
                clientRequestToken=creation_token(name, model.model_arn),
            )["customModelDeploymentArn"]
        )
    except ClientError as error:
        existing = adopt_by_name(
            bedrock,
            spec.environment,
            spec.fine_tuning,
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
        if error_code(error) == QUOTA:
            raise QuotaExceededError(
                f"Bedrock refused to create on-demand deployment {name} for {model.model_arn}: a service "
                f"quota is exhausted in {spec.region}. Bedrock said: {error_message(error)}"
            ) from error
        raise serving_error(f"creating on-demand deployment {name} for {model.model_arn}", error) from error
    created = check_created(
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
        elif delete_throughput(bedrock, throughput):
            report.changes.append(f"provisioned throughput {throughput.name} ({throughput.arn}) deleted")
        else:
            report.notes.append(
                f"provisioned throughput {throughput.name} is busy and could not be deleted yet: the next "
                "reconcile tries again"
            )
            kept.append(throughput)
    return kept


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
        elif delete_deployment(bedrock, deployment):
            report.changes.append(f"on-demand deployment {deployment.name} ({deployment.arn}) deleted")
        else:
            report.notes.append(
                f"on-demand deployment {deployment.name} is busy: the next reconcile deletes it"
            )
