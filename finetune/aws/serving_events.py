"""What the serving function does for each of its events, and what it tells people.

- A job state change of this fine-tuning: for the deployed job, Completed -> reconcile and tell
  people what serves now; Failed / Stopped -> tell people why, and how to retry; a superseded job's
  end is reported and never served.
- The hourly schedule: reconcile; people are told only when something changed or failed (a Failed
  PT is reported every time it is replaced).
- A deploy (`Custom::ServingLifecycle` Create/Update): reconcile with the deployed settings; never
  buys a commitment (the deploy could still roll back). Delete: the teardown.

Every run that may create serving waits for it while `wait_seconds` allow (`serving.converge`), so
the endpoint-arn parameter names a new PT as soon as it serves, not at the next hourly run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from finetune.aws import jobs, serving, teardown
from finetune.aws.endpoints import Clients, ModelRef, ServingError
from finetune.aws.log import log
from finetune.aws.notify import publish
from finetune.core import names
from finetune.core.contracts import JobStateChange, ServingResource

FAILED_STATES = ("Failed", "Stopped")
POLL_SECONDS = 15.0
Sleep = Callable[[float], None]


def subject(spec: ServingResource, what: str) -> str:
    return f"Fine-tuning {spec.fine_tuning} ({spec.environment}): {what}"


def on_job_state_change(
    clients: Clients, spec: ServingResource, change: JobStateChange, *, wait_seconds: float, sleep: Sleep
) -> dict[str, Any]:
    job, status = change.job_name, change.status
    if not names.owns_job(spec.environment, spec.fine_tuning, job):
        log("ignored", reason="job of another fine-tuning", job=job, status=status)
        return {"action": "ignored", "job": job}
    deployed = jobs.read_deployed_job(clients.ssm, spec.environment, spec.fine_tuning)
    # A candidate's job is the evaluation gate's, not a superseded one.
    candidate = spec.gate is not None and job in {trial.job_name for trial in spec.gate.trials[1:]}
    if (
        deployed is not None
        and deployed.job_name != job
        and not candidate
        and status in (*FAILED_STATES, jobs.COMPLETED)
    ):
        message = (
            f"Customization job {job} is {status}, but it is not the deployed configuration's job "
            f"({deployed.job_name}, from a {deployed.source}): its model is not served."
        )
        publish(clients.sns, spec.topic_arn, subject(spec, f"superseded job {status}"), message)
        log("superseded-job", job=job, status=status, deployed=deployed.job_name)
        return {"action": "ignored", "job": job, "status": status, "deployed": deployed.job_name}
    if status in FAILED_STATES and candidate:
        # The gate decides the trial as failed at its next run (and serves nothing of it).
        message = describe_failure(spec, change, candidate=True)
        publish(clients.sns, spec.topic_arn, subject(spec, f"candidate job {status}"), message)
        log("candidate-job-" + status.lower(), job=job, failureMessage=change.failure_message)
        return {"action": "notified", "job": job, "status": status}
    if status in FAILED_STATES:
        publish(clients.sns, spec.topic_arn, subject(spec, f"job {status}"), describe_failure(spec, change))
        log("job-" + status.lower(), job=job, failureMessage=change.failure_message)
        return {"action": "notified", "job": job, "status": status}
    if status != jobs.COMPLETED:
        log("ignored", reason="job still running", job=job, status=status)
        return {"action": "ignored", "job": job, "status": status}
    report = reconcile_and_tell(
        clients,
        spec,
        wait_seconds=wait_seconds,
        sleep=sleep,
        always_publish=True,
        reason=f"job {job} completed",
        completed=model_from_change(change),
    )
    return {"action": "reconciled", "job": job, "endpointArn": report.serving_arn or ""}


def on_schedule(
    clients: Clients, spec: ServingResource, *, wait_seconds: float, sleep: Sleep
) -> dict[str, Any]:
    report = reconcile_and_tell(
        clients,
        spec,
        wait_seconds=wait_seconds,
        sleep=sleep,
        always_publish=False,
        reason="scheduled reconcile",
    )
    return {"action": "reconciled", "changed": report.changed, "endpointArn": report.serving_arn or ""}


def reconcile_and_tell(
    clients: Clients,
    spec: ServingResource,
    *,
    wait_seconds: float,
    sleep: Sleep,
    always_publish: bool,
    reason: str,
    completed: ModelRef | None = None,
) -> serving.ReconcileReport:
    """Reconcile (waiting while its time allows); tell people what serves now, what failed, or why
    it could not be done (then raise)."""
    # A commitment cannot be undone: bought only when no deploy of the stack can still roll back.
    may_commit = spec.settings.commitment != "none" and serving.stack_is_stable(
        clients.cloudformation, spec.stack_id
    )
    try:
        report = serving.converge(
            clients,
            spec,
            wait_seconds=wait_seconds,
            poll_seconds=POLL_SECONDS,
            sleep=sleep,
            completed=completed,
            may_commit=may_commit,
        )
    except ServingError as error:
        log("reconcile-failed", reason=reason, error=str(error))
        message = f"{reason}: serving could not be set up.\n{error}"
        publish(clients.sns, spec.topic_arn, subject(spec, "serving failed"), message)
        raise
    log("reconcile", reason=reason, **report.as_log())
    if report.failures:
        publish(
            clients.sns, spec.topic_arn, subject(spec, "serving failed"), f"{reason}.\n{report.summary()}"
        )
    elif always_publish or report.changed:
        if report.model is None and report.gate is not None:
            ready = "evaluation gate under way"
        else:
            ready = "model ready, serving" if report.endpoint_ready else "model ready"
        publish(clients.sns, spec.topic_arn, subject(spec, ready), f"{reason}.\n{report.summary()}")
    return report


def on_deploy(
    clients: Clients, spec: ServingResource, request_type: str, *, wait_seconds: float, sleep: Sleep
) -> serving.ReconcileReport:
    """The deploy's reconcile: it records the settings, and never buys a commitment."""
    report = serving.converge(
        clients,
        spec,
        wait_seconds=wait_seconds,
        poll_seconds=POLL_SECONDS,
        sleep=sleep,
        deploying=True,
        may_commit=False,
    )
    log("reconcile", reason=f"CloudFormation {request_type}", **report.as_log())
    if report.changed:
        publish(clients.sns, spec.topic_arn, subject(spec, "serving"), report.summary())
    return report


def on_destroy(
    clients: Clients, spec: ServingResource, *, timeout_seconds: float, sleep: Sleep
) -> teardown.TeardownReport:
    """The teardown; what it stopped, deleted and could not delete is told."""
    report = teardown.teardown(clients, spec, timeout_seconds=timeout_seconds, sleep=sleep)
    committed = [throughput.describe() for throughput in report.committed]
    log(
        "teardown",
        environment=spec.environment,
        fineTuning=spec.fine_tuning,
        stopped=report.stopped,
        deleted=report.deleted,
        committed=committed,
    )
    if report.committed or report.deleted or report.stopped:
        publish(clients.sns, spec.topic_arn, subject(spec, "serving torn down"), report.summary())
    return report


def model_from_change(change: JobStateChange) -> ModelRef | None:
    """The model a Completed job's event announces (None when it names no output model)."""
    if change.status != jobs.COMPLETED or not change.output_model_arn or not change.job_name:
        return None
    ended: datetime | None = None
    try:
        ended = datetime.fromisoformat(change.end_time) if change.end_time else None
    except ValueError:
        ended = None
    return ModelRef(
        job_name=change.job_name,
        job_arn=change.job_arn,
        model_arn=change.output_model_arn,
        end_time=ended or datetime.now(UTC),
    )


def describe_failure(spec: ServingResource, change: JobStateChange, *, candidate: bool = False) -> str:
    """A message for people about a Failed or Stopped customization job, with how to retry it
    (a candidate's: the evaluation gate counts its trial as failed; a deploy trains it again)."""
    lines = [
        f"Bedrock customization job {change.job_name or '?'} is {change.status or '?'}.",
        f"Reason: {change.failure_message or 'Bedrock gave no failure message'}",
    ]
    if change.job_arn:
        lines.append(f"Job: {change.job_arn}")
    if change.status == "Stopped":
        lines.append(
            "A stopped job produced no custom model; the previous model (if any) keeps being served."
        )
    else:
        lines.append("No custom model was produced; the previous model (if any) keeps being served.")
    if candidate:
        lines.append(
            "It is a candidate of the evaluation gate: the gate counts that trial as failed and ranks the "
            "others. The next deploy trains the candidate's next generation on the same data, and the gate "
            "evaluates it then."
        )
        return "\n".join(lines)
    lines.append(
        "To train it again without changing anything (after a transient failure), run "
        f"`python -m finetune retry {spec.environment} {spec.fine_tuning}`: it starts the job's next "
        "generation on the same data. To change what is trained, fix the configuration or data and deploy."
    )
    return "\n".join(lines)
