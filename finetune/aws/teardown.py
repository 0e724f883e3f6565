"""Taking a fine-tuning's serving down on destroy, in an order that lets nothing come back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from finetune.aws import jobs, parameters
from finetune.aws.endpoints import (
    Clients,
    CommittedThroughput,
    TeardownIncompleteError,
    delete_deployment,
    delete_throughput,
    find_custom_models,
    find_deployments,
    find_throughputs,
    request_deletion,
)
from finetune.aws.errors import is_not_found
from finetune.aws.idle_alarms import existing_alarms
from finetune.core import names
from finetune.core.contracts import ServingResource

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class TeardownReport:
    """What `teardown()` stopped and deleted, and which committed PTs AWS keeps billing."""

    environment: str
    fine_tuning: str
    deleted: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    stopped_evaluations: list[str] = field(default_factory=list)
    committed: list[CommittedThroughput] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Fine-tuning {self.fine_tuning} ({self.environment}): serving torn down."]
        lines += [f"- stopped customization job {name}" for name in self.stopped]
        lines += [f"- stopped evaluation job {name}" for name in self.stopped_evaluations]
        lines += [f"- deleted {name}" for name in self.deleted]
        lines += [f"! {committed.describe()}" for committed in self.committed]
        lines += [f"* kept {name}" for name in self.kept]
        return "\n".join(lines)


def teardown(
    clients: Clients,
    spec: ServingResource,
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
    With an evaluation gate, its running evaluation jobs are stopped and its temporary endpoints
    deleted (and waited for) with serving's, before 3.
    4. With `spec.delete_models_on_destroy` (a `destroy` environment, whose key is deleted with the
       stack, leaving its models unreadable), the custom models and the remaining parameters are
       deleted too; otherwise models, the custom-model-arn and deployed-job parameters are kept.
    """
    environment, fine_tuning = spec.environment, spec.fine_tuning
    moment = now or datetime.now(UTC)
    deadline = clock() + timeout_seconds
    bedrock = clients.bedrock
    report = TeardownReport(environment=environment, fine_tuning=fine_tuning)
    parameters.delete(clients.ssm, environment, fine_tuning, names.SETTINGS_PARAMETER)
    if spec.stop_jobs_on_destroy:
        for job_name in jobs.running_jobs(bedrock, environment, fine_tuning):
            if jobs.stop_job_if_running(bedrock, job_name):
                report.stopped.append(job_name)

    pending: list[_PendingDeletion] = []
    unstopped: list[str] = []
    if spec.gate is not None:
        # The gate's evaluation jobs are stopped, and its temporary endpoints deleted and waited
        # for like serving's own: none may outlive the stack.
        from finetune.aws import trials  # only a gated fine-tuning loads the gate's code

        gate_clients = trials.GateClients.of(clients, s3=clients.s3, runtime=clients.runtime)
        gate = trials.GateReport(spec=trials.deployed_gate(clients.ssm, spec))
        report.stopped_evaluations += trials.stop_evaluations(gate_clients, gate.spec, gate)
        unstopped = gate.failures  # raised once the endpoints are deleted: those bill by the hour
        for endpoint in trials.find_temporary_endpoints(bedrock, environment, fine_tuning):
            get = (
                partial(bedrock.get_provisioned_model_throughput, provisionedModelId=endpoint.arn)
                if endpoint.kind == trials.PROVISIONED
                else partial(
                    bedrock.get_custom_model_deployment, customModelDeploymentIdentifier=endpoint.arn
                )
            )
            pending.append(
                _PendingDeletion(endpoint.label, partial(trials.delete_endpoint, bedrock, endpoint), get)
            )
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
                delete=partial(delete_throughput, bedrock, throughput),
                get=partial(bedrock.get_provisioned_model_throughput, provisionedModelId=throughput.arn),
            )
        )
    for deployment in find_deployments(bedrock, environment, fine_tuning):
        pending.append(
            _PendingDeletion(
                label=f"on-demand deployment {deployment.name} ({deployment.arn})",
                delete=partial(delete_deployment, bedrock, deployment),
                get=partial(
                    bedrock.get_custom_model_deployment, customModelDeploymentIdentifier=deployment.arn
                ),
            )
        )

    alarms = sorted(existing_alarms(clients.cloudwatch, environment, fine_tuning))
    if alarms:
        clients.cloudwatch.delete_alarms(AlarmNames=alarms)
        report.deleted += [f"idle alarm {name}" for name in alarms]
    _forget(clients.ssm, spec, names.ENDPOINT_ARN_PARAMETER, report)

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
    if unstopped:
        raise TeardownIncompleteError(
            "; ".join(unstopped)
            + ". Stop them in the Bedrock console (Evaluations) or run the teardown again."
        )

    if spec.delete_models_on_destroy and not report.committed:
        for model in find_custom_models(bedrock, environment, fine_tuning):
            if request_deletion(
                partial(bedrock.delete_custom_model, modelIdentifier=model), f"custom model {model}"
            ):
                report.deleted.append(f"custom model {model}")
        for name in (names.MODEL_ARN_PARAMETER, names.DEPLOYED_JOB_PARAMETER):
            _forget(clients.ssm, spec, name, report)
        if spec.gate is not None:
            # The gate's verdicts name models that are gone: a redeploy trains and judges anew.
            for trial in spec.gate.trials:
                _forget(clients.ssm, spec, names.trial_parameter(trial.name), report)
            _forget(clients.ssm, spec, names.WINNER_PARAMETER, report)
    else:
        if spec.delete_models_on_destroy:
            report.kept.append("the custom models: a committed provisioned throughput still serves one")
        else:
            report.kept.append("the custom models, training data and the custom-model-arn parameter")
    return report


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
        if is_not_found(error):
            return True
        raise
    return False


def _forget(ssm: Any, spec: ServingResource, name: str, report: TeardownReport) -> None:
    if parameters.delete(ssm, spec.environment, spec.fine_tuning, name):
        report.deleted.append(
            f"SSM parameter {names.ssm_parameter_name(spec.environment, spec.fine_tuning, name)}"
        )
