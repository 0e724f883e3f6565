"""The evaluation gate's reconciler: each trial's custom model evaluated at the least cost, judged,
and the winner named once every trial is decided.

A trial is the fine-tuning's own configuration ("main") or a candidate, each trained as its own
customization job. `reconcile_gate()` looks at what exists (the trials' jobs, their temporary
endpoints, their evaluation jobs, the records in SSM) and moves every trial one step on; it can run
any number of times, also concurrently (a job completion event, an evaluation state-change event and
the hourly schedule), with the same result. `teardown_gate()` removes what bills.

Per trial, recorded as JSON in the SSM parameter `trial-<name>` (`TrialRecord`):
1. Its job not completed: nothing. Failed or Stopped: the trial is decided, failed.
2. Completed: ONE temporary endpoint for it. With `on_demand` and a judge, an on-demand custom model
   deployment (billed per token; an evaluation job cannot invoke a deployment, so its responses are
   generated with Converse and judged as "bring your own inference"); otherwise a no-commitment
   provisioned throughput of 1 model unit, which the evaluation job invokes. Named by
   `names.temporary_endpoint_name` (never a serving name, see there), tagged with the fine-tuning's
   tags plus `finetune:temporary` = evaluation and `finetune:trial`.
3. The endpoint ready: the evaluation job `evaluation_job_name(<job name>, "eval")` starts. For
   `beat_base`, the base model is evaluated on the same dataset once per distinct base model
   (recorded in `gate-base-<hash>`), invoked directly.
4. The evaluation Completed: its results are aggregated, the gate applied, scores and verdict
   recorded, the endpoint deleted. Failed or Stopped (or results that cannot be read): failed.
5. `settings.max_hours` after the trial's endpoint was asked for, whatever state it is in: its
   evaluation is stopped, its endpoint deleted, the trial failed.
6. Every trial decided: the ranking of `finetune.core.evaluation` names the winner, recorded in
   `gate-winner`, and one message says the ranking and what each failed trial missed by how much.

Decisions:
- Final verdicts. A trial's record is keyed by its job name: a recorded verdict is never
  re-evaluated for that job; a new job of the trial (another configuration) starts a new record.
- Nothing outlives its trial. Every run lists the fine-tuning's temporary endpoints (name AND tags)
  and deletes each one whose trial is decided, scored, gone from the configuration, or that serves
  another model than the trial's job: a delete that failed once is retried by the next run, and a
  crash between a decision and the delete leaves nothing behind for long.
- Ownership. Serving (`finetune.aws.serving`) owns `<env>-<ft>-pt-<8 hex>` and `<env>-<ft>-od`; a
  temporary endpoint's name ends in `eval<8 hex>`, which neither pattern can match, and the gate
  owns only names equal to `temporary_endpoint_name(env, ft, <its trial tag>)` carrying its tags.
- Races. Creates carry a fresh `creation_token`; a create refused on the name adopts the endpoint of
  that name when it carries our temporary tags (as serving does). Evaluation jobs are found by their
  deterministic names first (`start_evaluation`). BYOI responses already written are reused, never
  generated twice (an evaluation may be reading them).
- Errors. A refusal that retrying cannot change (a rejected evaluation request, an endpoint Bedrock
  refuses other than for quota, a model Converse cannot invoke, unreadable results) decides the
  trial as failed and tears its endpoint down. Anything transient (throttling, quota, a run out of
  time) is a report failure or note, and the next run tries again: `max_hours` bounds the cost.
- Unanswered prompts. Bedrock scores only the prompts that got a response (a BYOI prompt Converse
  could not answer is left out of the responses): a trial with fewer scored prompts than the dataset
  holds fails the gate, saying how many were not scored, instead of passing on a subset.
- Notifications. The report carries `messages`; `publish_messages` sends them (the handler does,
  as serving's handlers do). The gate's message is made only by the run that records the winner.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from finetune.aws import jobs, notify, parameters
from finetune.aws.endpoints import (
    DEPLOYMENT_READY,
    NAME_TAKEN,
    PT_READY,
    QUOTA,
    Clients,
    ServingError,
    aware,
    check_created,
    creation_token,
    model_ref,
    pages,
    request_deletion,
    tag_list,
)
from finetune.aws.errors import error_code, error_message
from finetune.aws.evaluation import (
    EvaluationRejected,
    EvaluationRequest,
    EvaluationResultsError,
    EvaluationState,
    GenerationError,
    InferenceParams,
    evaluation_job_name,
    find_evaluation,
    generate_responses,
    object_keys,
    read_prompts,
    read_results,
    start_evaluation,
    stop_evaluation,
)
from finetune.core import names
from finetune.core.contracts import EvaluationGate, GateTrial, ServingResource
from finetune.core.deadline import DEFAULT_SECONDS, Deadline, DeadlineError
from finetune.core.evaluation import (
    JUDGE_TASK_TYPE,
    EvaluationSettings,
    Scores,
    TrialOutcome,
    Verdict,
    aggregate,
    judge,
    rank,
)

PROVISIONED = "provisioned"
DEPLOYMENT = "deployment"
# A trial's states, as recorded.
PREPARING = "preparing"  # the job completed: its endpoint is being made ready, its evaluation started
EVALUATING = "evaluating"  # its evaluation job runs
SCORED = "scored"  # scores recorded, endpoint gone: waiting for the base model's scores (beat_base)
PASSED = "passed"
FAILED = "failed"
DECIDED = frozenset({PASSED, FAILED})
ACTIVE = frozenset({PREPARING, EVALUATING})
# The base model's evaluation, as recorded.
BASE_EVALUATING = "evaluating"
BASE_SCORED = "scored"
BASE_FAILED = "failed"
EVALUATION_LABEL = "eval"
BASE_LABEL = "base"
TEMPORARY_MODEL_UNITS = 1


# --------------------------------------------------------------------------------------------------
# What the gate is asked to do
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateSpec:
    """A fine-tuning's evaluation gate: its settings, trials, and where the evaluation runs."""

    environment: str
    fine_tuning: str
    region: str
    settings: EvaluationSettings
    trials: tuple[GateTrial, ...]
    role_arn: str  # the evaluation service role
    bucket: str  # the stack's bucket
    dataset_key: str  # S3 key of the staged evaluation dataset (JSONL)
    output_prefix: str = "evaluation/"
    kms_key_arn: str | None = None
    topic_arn: str | None = None

    @property
    def prefix(self) -> str:
        return self.output_prefix if self.output_prefix.endswith("/") else f"{self.output_prefix}/"

    @property
    def dataset_s3_uri(self) -> str:
        return names.s3_uri(self.bucket, self.dataset_key)

    @property
    def output_s3_uri(self) -> str:
        return names.s3_uri(self.bucket, self.prefix)

    def trial(self, name: str) -> GateTrial | None:
        return next((trial for trial in self.trials if trial.name == name), None)

    @classmethod
    def for_serving(cls, serving: ServingResource, gate: EvaluationGate, main_job: str | None) -> GateSpec:
        """The gate of a deployed serving resource; `main_job`: the job recorded as deployed (an
        upload's or a retry's replaces the one synth named), None to keep synth's."""
        trials = tuple(
            replace(trial, job_name=main_job) if trial.name == names.MAIN_TRIAL and main_job else trial
            for trial in gate.trials
        )
        return cls(
            environment=serving.environment,
            fine_tuning=serving.fine_tuning,
            region=serving.region,
            settings=gate.settings,
            trials=trials,
            role_arn=gate.role_arn,
            bucket=gate.bucket,
            dataset_key=gate.dataset_key,
            output_prefix=gate.output_prefix,
            kms_key_arn=gate.kms_key_arn,
            topic_arn=serving.topic_arn,
        )


def deployed_gate(ssm: Any, serving: ServingResource) -> GateSpec:
    """The deployed serving resource's gate, with the main trial's job as recorded (an upload's or
    a retry's); ValueError for a fine-tuning without a gate."""
    if serving.gate is None:
        raise ValueError(f"{serving.environment}/{serving.fine_tuning} has no evaluation gate")
    deployed = jobs.read_deployed_job(ssm, serving.environment, serving.fine_tuning)
    return GateSpec.for_serving(serving, serving.gate, deployed.job_name if deployed else None)


@dataclass(frozen=True)
class GateClients:
    """The AWS clients the gate needs (anything with boto3's method names): Bedrock (jobs,
    endpoints, evaluations), bedrock-runtime (Converse, for BYOI), S3, SSM and SNS."""

    bedrock: Any
    ssm: Any
    sns: Any
    s3: Any
    runtime: Any

    @classmethod
    def of(cls, clients: Clients, *, s3: Any, runtime: Any) -> GateClients:
        return cls(bedrock=clients.bedrock, ssm=clients.ssm, sns=clients.sns, s3=s3, runtime=runtime)


# --------------------------------------------------------------------------------------------------
# Records (SSM)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    """A trial's state, as `trial-<name>` records it (JSON, keys as the field names)."""

    trial: str
    job_name: str
    state: str
    model_arn: str | None = None
    started_at: str | None = None  # ISO 8601: when its endpoint was first asked for (max_hours)
    endpoint_kind: str | None = None  # "provisioned" | "deployment"
    endpoint_name: str | None = None
    endpoint_arn: str | None = None
    endpoint_created_at: str | None = None
    evaluation_job: str | None = None
    evaluation_arn: str | None = None
    byoi: bool = False
    scores: Mapping[str, Any] | None = None  # Scores.to_json()
    verdict: Mapping[str, Any] | None = None  # Verdict.to_json()
    dataset_prompts: int | None = None  # prompts in the dataset, against the scored ones
    reason: str | None = None  # why it failed, when it did not get as far as a verdict on scores
    decided_at: str | None = None

    @property
    def decided(self) -> bool:
        return self.state in DECIDED

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TrialRecord | None:
        try:
            value = json.loads(text)
            known = {key: value[key] for key in cls.__dataclass_fields__ if key in value}
            return cls(**known)
        except (ValueError, TypeError, KeyError):
            return None

    def outcome(self, trial: GateTrial) -> TrialOutcome:
        scores = Scores.from_json(self.scores) if self.scores else Scores(values={}, prompts=0)
        verdict = Verdict.from_json(self.verdict) if self.verdict else Verdict(False, (self.reason or "",))
        return TrialOutcome(trial.name, verdict, scores, trial.serving_usd_per_30_days)


@dataclass(frozen=True)
class BaseRecord:
    """The base model's evaluation, as `gate-base-<hash>` records it."""

    base_model: str
    job_name: str
    state: str
    started_at: str
    job_arn: str | None = None
    scores: Mapping[str, Any] | None = None
    reason: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> BaseRecord | None:
        try:
            value = json.loads(text)
            return cls(**{key: value[key] for key in cls.__dataclass_fields__ if key in value})
        except (ValueError, TypeError, KeyError):
            return None


# --------------------------------------------------------------------------------------------------
# Temporary endpoints
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemporaryEndpoint:
    """A trial's temporary PT or deployment, as Bedrock lists it."""

    kind: str  # PROVISIONED | DEPLOYMENT
    name: str
    arn: str
    trial: str
    model_arn: str
    status: str
    created: datetime | None = None

    @property
    def ready(self) -> bool:
        return self.status in (PT_READY if self.kind == PROVISIONED else DEPLOYMENT_READY)

    @property
    def label(self) -> str:
        kind = "provisioned throughput" if self.kind == PROVISIONED else "on-demand deployment"
        return f"temporary {kind} {self.name} ({self.arn})"


def _tags(bedrock: Any, arn: str) -> dict[str, str]:
    return {
        tag["key"]: tag["value"] for tag in bedrock.list_tags_for_resource(resourceARN=arn).get("tags", [])
    }


def _owned_trial(bedrock: Any, environment: str, fine_tuning: str, name: str, arn: str) -> str | None:
    """The trial a temporary endpoint belongs to, when it is this fine-tuning's: its name is the
    one its trial tag gives, and it carries the fine-tuning's and the temporary tags."""
    if not names.is_temporary_endpoint_name(name):
        return None
    tags = _tags(bedrock, arn)
    trial = tags.get(names.TRIAL_TAG)
    if not trial or name != names.temporary_endpoint_name(environment, fine_tuning, trial):
        return None
    wanted = names.temporary_tags(environment, fine_tuning, trial)
    return trial if all(tags.get(key) == value for key, value in wanted.items()) else None


def find_temporary_endpoints(bedrock: Any, environment: str, fine_tuning: str) -> list[TemporaryEndpoint]:
    """Every temporary endpoint of this fine-tuning (PTs and deployments), by name AND tags."""
    prefix = names.job_name_prefix(environment, fine_tuning)
    found: list[TemporaryEndpoint] = []
    for summary in pages(
        bedrock.list_provisioned_model_throughputs, "provisionedModelSummaries", nameContains=prefix
    ):
        name, arn = str(summary["provisionedModelName"]), str(summary["provisionedModelArn"])
        trial = _owned_trial(bedrock, environment, fine_tuning, name, arn)
        if trial is not None:
            created = summary.get("creationTime")
            found.append(
                TemporaryEndpoint(
                    PROVISIONED,
                    name,
                    arn,
                    trial,
                    str(summary.get("desiredModelArn") or summary.get("modelArn") or ""),
                    str(summary.get("status", "")),
                    aware(created) if isinstance(created, datetime) else None,
                )
            )
    for summary in pages(
        bedrock.list_custom_model_deployments, "modelDeploymentSummaries", nameContains=prefix
    ):
        name, arn = str(summary["customModelDeploymentName"]), str(summary["customModelDeploymentArn"])
        trial = _owned_trial(bedrock, environment, fine_tuning, name, arn)
        if trial is not None:
            created = summary.get("createdAt")
            found.append(
                TemporaryEndpoint(
                    DEPLOYMENT,
                    name,
                    arn,
                    trial,
                    str(summary.get("modelArn") or ""),
                    str(summary.get("status", "")),
                    aware(created) if isinstance(created, datetime) else None,
                )
            )
    return sorted(found, key=lambda endpoint: (endpoint.trial, endpoint.kind, endpoint.arn))


def delete_endpoint(bedrock: Any, endpoint: TemporaryEndpoint) -> bool:
    """True when deleted (or gone already), False when Bedrock says it is busy (try again)."""
    if endpoint.kind == PROVISIONED:
        call = partial(bedrock.delete_provisioned_model_throughput, provisionedModelId=endpoint.arn)
    else:
        call = partial(bedrock.delete_custom_model_deployment, customModelDeploymentIdentifier=endpoint.arn)
    return request_deletion(call, endpoint.label)


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


@dataclass
class GateReport:
    """What one `reconcile_gate()` (or `teardown_gate()`) found and did.

    `trials`: each trial's record (None: its job has not completed yet). `finished`: every trial is
    decided; `winner` is then the best trial that passed (None: none did) and `winner_model_arn` its
    custom model. `messages`: (subject, text) to publish (`publish_messages`).
    """

    spec: GateSpec
    trials: dict[str, TrialRecord | None] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    finished: bool = False
    winner: TrialOutcome | None = None
    winner_model_arn: str | None = None
    ranking: list[TrialOutcome] = field(default_factory=list)

    @property
    def states(self) -> dict[str, str]:
        """Each trial's state: `waiting` (job not completed), or its record's state."""
        return {name: record.state if record else "waiting" for name, record in self.trials.items()}

    def fail(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)

    def summary(self) -> str:
        spec = self.spec
        lines = [f"Evaluation gate of {spec.fine_tuning} ({spec.environment}, {spec.region}):"]
        lines += [f"trial {name}: {state}" for name, state in self.states.items()]
        if self.finished:
            lines.append(f"winner: {self.winner.name if self.winner else 'none'}")
        lines += [f"! {failure}" for failure in self.failures]
        lines += [f"- {change}" for change in self.changes]
        lines += [f"* {note}" for note in self.notes]
        return "\n".join(lines)


def publish_messages(sns: Any, report: GateReport) -> int:
    """Publish the report's messages to the gate's topic; how many were sent."""
    return sum(
        notify.publish(sns, report.spec.topic_arn, subject, message) for subject, message in report.messages
    )


# --------------------------------------------------------------------------------------------------
# Reconcile
# --------------------------------------------------------------------------------------------------


def reconcile_gate(
    clients: GateClients, spec: GateSpec, *, now: datetime, deadline: Deadline | None = None
) -> GateReport:
    """Move every trial of the gate one step on, tear down what is no longer needed, and name the
    winner once every trial is decided. Idempotent; safe to run concurrently.

    `deadline`: when this run must stop generating BYOI responses (default: 15 minutes from now).
    """
    gate = _Gate(clients, spec, aware(now), deadline or Deadline(expires_at=time.time() + DEFAULT_SECONDS))
    return gate.run()


def teardown_gate(clients: GateClients, spec: GateSpec) -> GateReport:
    """For stack destroy: stop the gate's running evaluation jobs and delete every temporary
    endpoint of the fine-tuning (found by name AND tags, whatever trial it was for). The serving
    teardown (`finetune.aws.teardown`) stops the evaluations the same way and waits for the
    endpoints to be gone."""
    report = GateReport(spec=spec)
    stop_evaluations(clients, spec, report)
    for endpoint in find_temporary_endpoints(clients.bedrock, spec.environment, spec.fine_tuning):
        try:
            if delete_endpoint(clients.bedrock, endpoint):
                report.changes.append(f"{endpoint.label} deleted")
            else:
                report.fail(f"{endpoint.label} is busy and could not be deleted yet: run the teardown again")
        except ServingError as error:
            report.fail(str(error))
    return report


def stop_evaluations(clients: GateClients, spec: GateSpec, report: GateReport) -> list[str]:
    """Stop every running evaluation job of the gate (each trial's, recorded or named, and the
    base models'); the names of those stopped."""
    names_to_stop: dict[str, None] = {}
    for trial in spec.trials:
        names_to_stop.setdefault(evaluation_job_name(trial.job_name, EVALUATION_LABEL))
        text = parameters.get(
            clients.ssm, spec.environment, spec.fine_tuning, names.trial_parameter(trial.name)
        )
        record = TrialRecord.from_json(text) if text else None
        if record is not None and record.evaluation_job:
            names_to_stop.setdefault(record.evaluation_job)
        names_to_stop.setdefault(base_job_name(spec, trial.invocable_base_model))
    stopped: list[str] = []
    for job_name in names_to_stop:
        try:
            state = find_evaluation(clients.bedrock, job_name)
            if state is not None and not state.terminal and stop_evaluation(clients.bedrock, state.job_arn):
                report.changes.append(f"evaluation job {job_name} stopped")
                stopped.append(job_name)
        except (ClientError, EvaluationRejected) as error:
            report.fail(f"stopping evaluation job {job_name}: {error}")
    return stopped


def base_job_name(spec: GateSpec, model_id: str) -> str:
    """The base model's evaluation job: one per (fine-tuning, base model, dataset, metrics, judge,
    inference settings), so a changed dataset or metric evaluates the base model again."""
    settings = spec.settings
    digest = hashlib.sha256(
        json.dumps(
            [
                model_id,
                spec.dataset_key,
                list(settings.metrics),
                settings.task_type,
                settings.judge_model,
                settings.max_tokens,
                settings.temperature,
            ]
        ).encode()
    ).hexdigest()[:10]
    return evaluation_job_name(
        f"{names.job_name_prefix(spec.environment, spec.fine_tuning)}{digest}", BASE_LABEL
    )


class _Final(Exception):  # noqa: N818 (internal: the trial is decided as failed, for this reason)
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Gate:
    clients: GateClients
    spec: GateSpec
    now: datetime
    deadline: Deadline
    report: GateReport = field(init=False)
    endpoints: list[TemporaryEndpoint] = field(init=False, default_factory=list)
    bases: dict[str, BaseRecord | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.report = GateReport(spec=self.spec)

    @property
    def bedrock(self) -> Any:
        return self.clients.bedrock

    @property
    def settings(self) -> EvaluationSettings:
        return self.spec.settings

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> GateReport:
        report = self.report
        try:
            self.endpoints = find_temporary_endpoints(
                self.bedrock, self.spec.environment, self.spec.fine_tuning
            )
        except ClientError as error:
            report.fail(
                f"listing the temporary endpoints failed: {error_code(error)}: {error_message(error)}"
            )
            return report
        for trial in self.spec.trials:
            report.trials[trial.name] = self.load(trial)
            try:
                self.step(trial, report.trials[trial.name])
            except _Final as final:
                self.decide_failed(trial, report.trials[trial.name], final.reason)
            except (ClientError, ServingError, EvaluationRejected, jobs.JobRejected) as error:
                report.fail(f"trial {trial.name}: {_describe(error)} (the next run tries again)")
            except DeadlineError as error:
                report.notes.append(f"trial {trial.name}: {error} (the next run goes on)")
        self.sweep()
        self.name_winner()
        return report

    def load(self, trial: GateTrial) -> TrialRecord | None:
        text = parameters.get(
            self.clients.ssm, self.spec.environment, self.spec.fine_tuning, names.trial_parameter(trial.name)
        )
        record = TrialRecord.from_json(text) if text else None
        if record is not None and record.job_name != trial.job_name:
            self.report.notes.append(
                f"trial {trial.name}: its job is now {trial.job_name} (was {record.job_name}): evaluated anew"
            )
            return None
        return record

    def save(self, record: TrialRecord) -> TrialRecord:
        change = parameters.put(
            self.clients.ssm,
            self.spec.environment,
            self.spec.fine_tuning,
            names.trial_parameter(record.trial),
            record.to_json(),
        )
        if change:
            self.report.changes.append(f"trial {record.trial}: {record.state}")
        self.report.trials[record.trial] = record
        return record

    def step(self, trial: GateTrial, record: TrialRecord | None) -> TrialRecord | None:
        if record is not None and record.decided:
            return record
        if record is None:
            record = self.begin(trial)
            if record is None or record.decided:
                return record
        if record.state in ACTIVE:
            self.check_lifetime(trial, record)
            record = self.evaluate(trial, record)
        if record.state == SCORED:
            record = self.conclude(trial, record)
        return record

    # -- 1. the job ----------------------------------------------------------------------------------

    def begin(self, trial: GateTrial) -> TrialRecord | None:
        job = jobs.find_job(self.bedrock, trial.job_name)
        if job is None or job.status not in (jobs.COMPLETED, "Failed", "Stopped"):
            status = job.status if job is not None else "not found"
            self.report.notes.append(
                f"trial {trial.name}: job {trial.job_name} is {status}: nothing to evaluate yet"
            )
            return None
        if job.status != jobs.COMPLETED:
            reason = (
                f"job {trial.job_name} ended {job.status}: {job.failure_message or 'no message from Bedrock'}"
            )
            return self.decide_failed(trial, None, reason)
        model_arn = model_ref(self.bedrock, {"jobName": job.job_name, "jobArn": job.job_arn}).model_arn
        record = TrialRecord(
            trial=trial.name,
            job_name=trial.job_name,
            state=PREPARING,
            model_arn=model_arn,
            started_at=self.now.isoformat(),
            evaluation_job=evaluation_job_name(trial.job_name, EVALUATION_LABEL),
            byoi=self.uses_deployment(trial),
        )
        return self.save(record)

    def uses_deployment(self, trial: GateTrial) -> bool:
        return trial.on_demand and self.settings.uses_judge

    # -- 5. the hard lifetime --------------------------------------------------------------------------

    def check_lifetime(self, trial: GateTrial, record: TrialRecord) -> None:
        started = datetime.fromisoformat(record.started_at) if record.started_at else self.now
        if self.now - aware(started) <= timedelta(hours=self.settings.max_hours):
            return
        if record.evaluation_job:
            try:
                state = find_evaluation(self.bedrock, record.evaluation_job)
                if state is not None and not state.terminal and stop_evaluation(self.bedrock, state.job_arn):
                    self.report.changes.append(f"evaluation job {state.job_name} stopped")
            except (ClientError, EvaluationRejected) as error:
                # The endpoint goes all the same (without it the evaluation cannot go on either).
                self.report.fail(f"stopping evaluation job {record.evaluation_job}: {_describe(error)}")
        raise _Final(
            f"timed out after {self.settings.max_hours} h (limit evaluation.max_hours) before its "
            "evaluation completed"
        )

    # -- 2, 3, 4. endpoint and evaluation ------------------------------------------------------------

    def evaluate(self, trial: GateTrial, record: TrialRecord) -> TrialRecord:
        name = record.evaluation_job or evaluation_job_name(trial.job_name, EVALUATION_LABEL)
        state = find_evaluation(self.bedrock, name)
        if state is None:
            endpoint = self.ensure_endpoint(trial, record)
            if endpoint is None:
                return record
            record = self.save(
                replace(
                    record,
                    endpoint_kind=endpoint.kind,
                    endpoint_name=endpoint.name,
                    endpoint_arn=endpoint.arn,
                    endpoint_created_at=record.endpoint_created_at or self.now.isoformat(),
                )
            )
            if not endpoint.ready:
                self.report.notes.append(
                    f"trial {trial.name}: {endpoint.label} is {endpoint.status}: not ready yet"
                )
                return record
            state = self.start(trial, record, endpoint)
            record = self.save(replace(record, state=EVALUATING, evaluation_arn=state.job_arn))
        elif record.evaluation_arn != state.job_arn or record.state != EVALUATING:
            record = self.save(replace(record, state=EVALUATING, evaluation_arn=state.job_arn))
        if self.settings.gate.beat_base:
            self.base_scores(trial)  # started with the trial's own evaluation, at the latest
        if not state.terminal:
            self.report.notes.append(f"trial {trial.name}: evaluation job {state.job_name} is {state.status}")
            return record
        if not state.completed:
            messages = "; ".join(state.failure_messages) or "Bedrock gave no failure message"
            raise _Final(f"evaluation job {state.job_name} ended {state.status}: {messages}")
        try:
            rows = read_results(self.clients.s3, self.spec.output_s3_uri, state.job_name, state.job_arn)
        except EvaluationResultsError as error:
            raise _Final(f"the results of evaluation job {state.job_name} cannot be read: {error}") from error
        scores = aggregate(rows, self.settings.metrics)
        try:
            prompts = len(read_prompts(self.clients.s3, self.spec.dataset_s3_uri))
        except GenerationError as error:
            raise _Final(str(error)) from error
        return self.save(replace(record, state=SCORED, scores=scores.to_json(), dataset_prompts=prompts))

    def endpoint_kind(self, trial: GateTrial) -> str:
        return DEPLOYMENT if self.uses_deployment(trial) else PROVISIONED

    def wanted(self, endpoint: TemporaryEndpoint) -> bool:
        """True for the endpoint an active trial evaluates on (its job's model, of its kind)."""
        trial = self.spec.trial(endpoint.trial)
        record = self.report.trials.get(endpoint.trial)
        return (
            trial is not None
            and record is not None
            and record.state in ACTIVE
            and endpoint.model_arn == record.model_arn
            and endpoint.kind == self.endpoint_kind(trial)
        )

    def ensure_endpoint(self, trial: GateTrial, record: TrialRecord) -> TemporaryEndpoint | None:
        """The trial's endpoint for its job's model: found, else created; None while an endpoint of
        another model or kind (an earlier job or setting of the trial) is being deleted first."""
        kind = self.endpoint_kind(trial)
        mine = [endpoint for endpoint in self.endpoints if endpoint.trial == trial.name]
        for endpoint in mine:
            if endpoint.model_arn == record.model_arn and endpoint.kind == kind:
                if endpoint.status == "Failed":
                    raise _Final(f"{endpoint.label} Failed: {self.failure_message(endpoint)}")
                return endpoint
        if mine:
            self.report.notes.append(
                f"trial {trial.name}: its earlier temporary endpoint serves another model and is deleted "
                "first; the next run creates the new one"
            )
            return None
        endpoint = self.create_endpoint(trial, record, kind)
        self.endpoints.append(endpoint)
        return endpoint

    def failure_message(self, endpoint: TemporaryEndpoint) -> str:
        try:
            found = self.get_endpoint(endpoint.kind, endpoint.arn)
        except ClientError as error:
            return f"its failure message could not be read ({error_code(error)})"
        return str(found.get("failureMessage") or "Bedrock gave no failure message")

    def create_endpoint(self, trial: GateTrial, record: TrialRecord, kind: str) -> TemporaryEndpoint:
        spec = self.spec
        name = names.temporary_endpoint_name(spec.environment, spec.fine_tuning, trial.name)
        model_arn = str(record.model_arn)
        tags = tag_list(
            {
                **names.temporary_tags(spec.environment, spec.fine_tuning, trial.name),
                names.MODEL_TAG: model_arn,
            }
        )
        get = partial(self.get_endpoint, kind)
        try:
            if kind == PROVISIONED:
                arn = str(
                    self.bedrock.create_provisioned_model_throughput(
                        modelUnits=TEMPORARY_MODEL_UNITS,
                        provisionedModelName=name,
                        modelId=model_arn,
                        clientRequestToken=creation_token(name, model_arn),
                        tags=tags,
                    )["provisionedModelArn"]
                )
            else:
                arn = str(
                    self.bedrock.create_custom_model_deployment(
                        modelDeploymentName=name,
                        modelArn=model_arn,
                        description=(
                            f"Temporary: evaluation of trial {trial.name} of fine-tuning {spec.fine_tuning} "
                            f"({spec.environment}); deleted once evaluated"
                        ),
                        tags=tags,
                        clientRequestToken=creation_token(name, model_arn),
                    )["customModelDeploymentArn"]
                )
        except ClientError as error:
            adopted = self.adopt(kind, name, trial.name, error, get)
            if adopted is not None:
                return adopted
            what = "provisioned throughput" if kind == PROVISIONED else "on-demand deployment"
            message = f"creating the temporary {what} {name} for {model_arn}: {error_code(error)}: {error_message(error)}"
            if error_code(error) in (
                "ValidationException",
                "AccessDeniedException",
                "ResourceNotFoundException",
            ):
                raise _Final(message) from error
            if error_code(error) == QUOTA:
                message += (
                    " (a quota: provisioned-throughput model units start at 0 until AWS support raises them;"
                    " the next run tries again until evaluation.max_hours)"
                )
            raise ServingError(message) from error
        created = check_created(f"temporary endpoint {name}", arn, partial(get, arn))
        endpoint = _endpoint_of(kind, name, arn, trial.name, model_arn, created)
        self.report.changes.append(
            f"{endpoint.label} created for trial {trial.name}"
            + (f" ({TEMPORARY_MODEL_UNITS} model unit, no commitment)" if kind == PROVISIONED else "")
        )
        return endpoint

    def get_endpoint(self, kind: str, identifier: str) -> Mapping[str, Any]:
        if kind == PROVISIONED:
            return dict(self.bedrock.get_provisioned_model_throughput(provisionedModelId=identifier))
        return dict(self.bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=identifier))

    def adopt(
        self, kind: str, name: str, trial: str, error: ClientError, get: Callable[[str], Mapping[str, Any]]
    ) -> TemporaryEndpoint | None:
        """After a refused create: the endpoint of that name when a concurrent run made it, ours."""
        if error_code(error) not in NAME_TAKEN:
            return None
        try:
            existing = get(name)
        except ClientError:
            return None
        arn_key = "provisionedModelArn" if kind == PROVISIONED else "customModelDeploymentArn"
        arn = str(existing[arn_key])
        if _owned_trial(self.bedrock, self.spec.environment, self.spec.fine_tuning, name, arn) != trial:
            return None
        self.report.notes.append(
            f"trial {trial}: temporary endpoint {name} was created by a concurrent run: adopted"
        )
        return _endpoint_of(kind, name, arn, trial, str(existing.get("modelArn") or ""), existing)

    def start(self, trial: GateTrial, record: TrialRecord, endpoint: TemporaryEndpoint) -> EvaluationState:
        settings, spec = self.settings, self.spec
        name = record.evaluation_job or evaluation_job_name(trial.job_name, EVALUATION_LABEL)
        fields: dict[str, Any] = {
            "job_name": name,
            "role_arn": spec.role_arn,
            "output_s3_uri": spec.output_s3_uri,
            "metrics": settings.metrics,
            "task_type": JUDGE_TASK_TYPE if settings.uses_judge else settings.task_type,
            "judge_model": settings.judge_model,
            "kms_key_arn": spec.kms_key_arn,
            "tags": names.temporary_tags(spec.environment, spec.fine_tuning, trial.name),
        }
        if endpoint.kind == DEPLOYMENT:
            fields["dataset_s3_uri"] = self.responses(trial, name, endpoint)
            fields["precomputed_label"] = trial.name
        else:
            fields["dataset_s3_uri"] = spec.dataset_s3_uri
            fields["model_identifier"] = endpoint.arn
            fields["inference_params"] = InferenceParams(settings.max_tokens, settings.temperature)
        try:
            request = EvaluationRequest(**fields)
        except ValueError as error:
            raise _Final(str(error)) from error
        try:
            state = start_evaluation(self.bedrock, request)
        except EvaluationRejected as rejected:
            if rejected.code == QUOTA:
                raise
            raise _Final(str(rejected)) from rejected
        if state.started:
            self.report.changes.append(
                f"evaluation job {name} started for trial {trial.name} on {endpoint.name}"
            )
        return state

    def responses(self, trial: GateTrial, job_name: str, endpoint: TemporaryEndpoint) -> str:
        """The BYOI dataset: the deployment's responses, generated once (reused when written)."""
        spec = self.spec
        key = f"{spec.prefix}responses/{job_name}.jsonl"
        uri = names.s3_uri(spec.bucket, key)
        if key in set(object_keys(self.clients.s3, spec.bucket, key)):
            return uri
        try:
            result = generate_responses(
                self.clients.runtime,
                self.clients.s3,
                model_id=endpoint.arn,
                dataset_s3_uri=spec.dataset_s3_uri,
                responses_s3_uri=uri,
                label=trial.name,
                max_tokens=self.settings.max_tokens,
                temperature=self.settings.temperature,
                deadline=self.deadline,
                kms_key_arn=spec.kms_key_arn,
            )
        except GenerationError as error:
            raise _Final(f"responses for the evaluation could not be generated: {error}") from error
        self.report.changes.append(
            f"trial {trial.name}: {result.succeeded} of {result.prompts} responses of {endpoint.name} written "
            f"to {uri} ({result.input_tokens} input and {result.output_tokens} output tokens)"
        )
        if result.failed:
            self.report.notes.append(
                f"trial {trial.name}: {result.failed} prompts got no response and are not scored: "
                + "; ".join(result.failure_messages)
            )
        return uri

    # -- beat_base ----------------------------------------------------------------------------------

    def base_scores(self, trial: GateTrial) -> tuple[bool, Scores | None]:
        """(decided, scores) of the base model's evaluation; started when not yet."""
        model_id = trial.invocable_base_model
        if model_id in self.bases:
            record = self.bases[model_id]
        else:
            record = self.step_base(model_id)
            self.bases[model_id] = record
        if record is None or record.state == BASE_EVALUATING:
            return False, None
        return True, Scores.from_json(record.scores) if record.scores else None

    def step_base(self, model_id: str) -> BaseRecord | None:
        spec, settings = self.spec, self.settings
        parameter = names.base_evaluation_parameter(model_id)
        job_name = base_job_name(spec, model_id)
        text = parameters.get(self.clients.ssm, spec.environment, spec.fine_tuning, parameter)
        record = BaseRecord.from_json(text) if text else None
        if record is not None and record.job_name != job_name:
            record = None
        if record is not None and record.state != BASE_EVALUATING:
            return record
        try:
            state = find_evaluation(self.bedrock, job_name)
            if record is not None and self.now - aware(datetime.fromisoformat(record.started_at)) > timedelta(
                hours=settings.max_hours
            ):
                if state is not None and not state.terminal and stop_evaluation(self.bedrock, state.job_arn):
                    self.report.changes.append(f"evaluation job {job_name} (base model) stopped")
                return self.save_base(
                    replace(record, state=BASE_FAILED, reason=f"timed out after {settings.max_hours} h")
                )
            if state is None:
                request = EvaluationRequest(
                    job_name=job_name,
                    role_arn=spec.role_arn,
                    dataset_s3_uri=spec.dataset_s3_uri,
                    output_s3_uri=spec.output_s3_uri,
                    metrics=settings.metrics,
                    task_type=JUDGE_TASK_TYPE if settings.uses_judge else settings.task_type,
                    judge_model=settings.judge_model,
                    model_identifier=model_id,
                    inference_params=InferenceParams(settings.max_tokens, settings.temperature),
                    kms_key_arn=spec.kms_key_arn,
                    tags=names.resource_tags(spec.environment, spec.fine_tuning),
                )
                state = start_evaluation(self.bedrock, request)
                if state.started:
                    self.report.changes.append(
                        f"evaluation job {job_name} started for the base model {model_id}"
                    )
            if record is None:
                record = self.save_base(
                    BaseRecord(
                        model_id, job_name, BASE_EVALUATING, self.now.isoformat(), job_arn=state.job_arn
                    )
                )
            if not state.terminal:
                return record
            if not state.completed:
                reason = f"ended {state.status}: " + ("; ".join(state.failure_messages) or "no message")
                return self.save_base(replace(record, state=BASE_FAILED, reason=reason))
            try:
                rows = read_results(self.clients.s3, spec.output_s3_uri, state.job_name, state.job_arn)
            except EvaluationResultsError as error:
                return self.save_base(replace(record, state=BASE_FAILED, reason=str(error)))
            scores = aggregate(rows, settings.metrics)
            return self.save_base(replace(record, state=BASE_SCORED, scores=scores.to_json()))
        except (ValueError, EvaluationRejected) as error:
            if isinstance(error, EvaluationRejected) and error.code == QUOTA:
                self.report.fail(f"base model {model_id}: {error} (the next run tries again)")
                return record
            failed = BaseRecord(model_id, job_name, BASE_FAILED, self.now.isoformat(), reason=str(error))
            return self.save_base(
                failed if record is None else replace(record, state=BASE_FAILED, reason=str(error))
            )
        except ClientError as error:
            self.report.fail(f"base model {model_id}: {_describe(error)} (the next run tries again)")
            return record

    def save_base(self, record: BaseRecord) -> BaseRecord:
        change = parameters.put(
            self.clients.ssm,
            self.spec.environment,
            self.spec.fine_tuning,
            names.base_evaluation_parameter(record.base_model),
            record.to_json(),
        )
        if change:
            self.report.changes.append(f"base model {record.base_model}: {record.state}")
        return record

    # -- verdicts -----------------------------------------------------------------------------------

    def conclude(self, trial: GateTrial, record: TrialRecord) -> TrialRecord:
        scores = Scores.from_json(record.scores or {"scores": {}, "prompts": 0})
        base: Scores | None = None
        if self.settings.gate.beat_base:
            decided, base = self.base_scores(trial)
            if not decided:
                self.report.notes.append(
                    f"trial {trial.name}: scored; waiting for the base model's evaluation (beat_base)"
                )
                return record
        verdict = judge(self.settings, scores, base)
        expected = record.dataset_prompts or 0
        if scores.prompts < expected:
            # Bedrock scores only the prompts that got a response: the rest must not pass unseen.
            verdict = Verdict(
                False,
                (
                    *verdict.misses,
                    f"{expected - scores.prompts} of {expected} prompts were not scored (no response from "
                    "the model)",
                ),
            )
        return self.save(
            replace(
                record,
                state=PASSED if verdict.passed else FAILED,
                verdict=verdict.to_json(),
                decided_at=self.now.isoformat(),
            )
        )

    def decide_failed(self, trial: GateTrial, record: TrialRecord | None, reason: str) -> TrialRecord:
        base = record or TrialRecord(trial=trial.name, job_name=trial.job_name, state=FAILED)
        decided = replace(
            base,
            state=FAILED,
            reason=reason,
            verdict=Verdict(False, (reason,)).to_json(),
            decided_at=self.now.isoformat(),
        )
        self.report.notes.append(f"trial {trial.name} failed: {reason}")
        return self.save(decided)

    # -- teardown of what is not needed any more ------------------------------------------------------

    def sweep(self) -> None:
        """Delete every temporary endpoint that no active trial evaluates on."""
        for endpoint in self.endpoints:
            if self.wanted(endpoint):
                continue
            try:
                if delete_endpoint(self.bedrock, endpoint):
                    self.report.changes.append(f"{endpoint.label} deleted")
                else:
                    self.report.notes.append(f"{endpoint.label} is busy: the next run deletes it")
            except ServingError as error:
                self.report.fail(f"{error} (the next run tries again)")

    # -- 6. the winner ------------------------------------------------------------------------------

    def name_winner(self) -> None:
        report, spec = self.report, self.spec
        records = report.trials
        if not spec.trials or any(record is None or not record.decided for record in records.values()):
            return
        outcomes = [
            record.outcome(trial) for trial in spec.trials if (record := records[trial.name]) is not None
        ]
        report.finished = True
        if self.settings.gate.beat_base:
            self.stop_unneeded_bases()
        report.ranking = rank(self.settings, outcomes)
        report.winner = report.ranking[0] if report.ranking else None
        value: dict[str, Any]
        if report.winner is not None:
            won = records[report.winner.name]
            report.winner_model_arn = won.model_arn if won else None
            value = {
                "trial": report.winner.name,
                "job_name": won.job_name if won else None,
                "model_arn": report.winner_model_arn,
            }
        else:
            value = {"trial": None, "reason": "no trial passed the evaluation gate"}
        change = parameters.put(
            self.clients.ssm,
            spec.environment,
            spec.fine_tuning,
            names.WINNER_PARAMETER,
            json.dumps(value, sort_keys=True, separators=(",", ":")),
        )
        if change:
            report.changes.append(change)
            report.messages.append(self.message(outcomes))

    def stop_unneeded_bases(self) -> None:
        """Every trial is decided: a base model's evaluation still running is needed no more."""
        spec = self.spec
        for model_id in dict.fromkeys(trial.invocable_base_model for trial in spec.trials):
            parameter = names.base_evaluation_parameter(model_id)
            text = parameters.get(self.clients.ssm, spec.environment, spec.fine_tuning, parameter)
            record = BaseRecord.from_json(text) if text else None
            if record is None or record.state != BASE_EVALUATING:
                continue
            try:
                state = find_evaluation(self.bedrock, record.job_name)
                if state is not None and not state.terminal and stop_evaluation(self.bedrock, state.job_arn):
                    self.report.changes.append(f"evaluation job {record.job_name} (base model) stopped")
            except (ClientError, EvaluationRejected) as error:
                self.report.fail(f"stopping evaluation job {record.job_name}: {_describe(error)}")
                continue
            self.save_base(
                replace(record, state=BASE_FAILED, reason="stopped: every trial was decided without it")
            )

    def message(self, outcomes: list[TrialOutcome]) -> tuple[str, str]:
        report, spec = self.report, self.spec
        metric = self.settings.ranking_metric
        lines = [f"Evaluation gate of fine-tuning {spec.fine_tuning} ({spec.environment}, {spec.region}):"]
        if report.winner is not None:
            subject = (
                f"{spec.environment}/{spec.fine_tuning}: trial {report.winner.name} passed the gate and wins"
            )
            lines.append(f"winner: {report.winner.name} ({report.winner_model_arn})")
        else:
            subject = f"{spec.environment}/{spec.fine_tuning}: no trial passed the evaluation gate"
            lines.append("no trial passed the gate: nothing is served from this evaluation.")
        if report.ranking:
            lines.append(f"ranking (by {metric}, then serving cost per 30 days):")
            for place, outcome in enumerate(report.ranking, start=1):
                score = outcome.scores.values.get(metric)
                cost = outcome.serving_usd_per_30_days
                line = f"{place}. {outcome.name}: {metric} " + (
                    f"{score:.4f}" if score is not None else "no score"
                )
                if cost is not None:
                    line += f", serving ${cost:,.2f} per 30 days"
                lines.append(line)
        for outcome in outcomes:
            if not outcome.verdict.passed:
                lines.append(f"trial {outcome.name} failed the gate:")
                lines += [f"  - {miss}" for miss in outcome.verdict.misses]
        return subject, "\n".join(lines)


def _endpoint_of(
    kind: str, name: str, arn: str, trial: str, model_arn: str, found: Mapping[str, Any]
) -> TemporaryEndpoint:
    created = found.get("creationTime") if kind == PROVISIONED else found.get("createdAt")
    return TemporaryEndpoint(
        kind=kind,
        name=name,
        arn=arn,
        trial=trial,
        model_arn=str(found.get("desiredModelArn") or found.get("modelArn") or model_arn),
        status=str(found.get("status") or "Creating"),
        created=aware(created) if isinstance(created, datetime) else None,
    )


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error)}: {error_message(error)}"
    return str(error)
