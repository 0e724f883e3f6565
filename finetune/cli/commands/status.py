"""`python -m finetune status ENV [FINE_TUNING]`: what runs in AWS for an environment's fine-tunings.

Per fine-tuning (from cdk.json, through `finetune.core.project`), in its region: the customization jobs
(`<env>-<ft>-<12 hex>`, the names `finetune.core.names` gives them) with status, times, base model,
data digest and failure message; the custom models; the serving endpoints (provisioned throughputs
and on-demand deployments the serving reconciler owns, with units and commitment); and the SSM
parameters applications read. `--watch` prints it again every `--interval` seconds until no job is
InProgress.

Decisions:
- Read-only, through the standard credential chain; `--endpoint-url` points every client at another
  endpoint (moto's server, a VPC endpoint).
- An endpoint that lacks an API (moto answers HTTP 500 for provisioned throughput and deployment
  calls; an unknown operation is a 404) is reported as "unavailable at this endpoint" once and not
  asked again in the same run; any other error of one section is printed in that section. Only a
  missing region or missing credentials stop the command (exit 2).
- Ownership as the reconciler decides it (`finetune.aws.serving`): exact name patterns plus tags, so
  `dev-support-` never shows `dev-support-bot-`'s resources.
- The data digest comes from the job's `finetune:data-sha256` tag; when tags cannot be read, the
  name's 12-hex suffix (the job digest, which covers the data) is shown and labelled as such.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from finetune.aws import endpoints, parameters
from finetune.aws.errors import error_code, error_message
from finetune.aws.trials import TrialRecord
from finetune.cli.aws_access import aws_client, refused, usage_error_for
from finetune.cli.main import EXIT_OK, UsageError, project_input
from finetune.core import names as identity
from finetune.core.config import FineTuningConfig

DEFAULT_INTERVAL_SECONDS = 60.0
RUNNING = "InProgress"
# Errors Bedrock's service model defines: anything else at 404/500/501 means the endpoint lacks the API.
MODELED_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "ConflictException",
        "InternalServerException",
        "ResourceNotFoundException",
        "ServiceQuotaExceededException",
        "ThrottlingException",
        "TooManyTagsException",
        "ValidationException",
    }
)
UNAVAILABLE = "unavailable at this endpoint"

Clock = Callable[[], float]
Sleep = Callable[[float], None]
Now = Callable[[], datetime]


def _unavailable(error: Exception) -> bool:
    """True when the endpoint does not implement the call (rather than refusing this request)."""
    if isinstance(error, NotImplementedError):  # moto in-process (mock_aws)
        return True
    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status in (404, 500, 501) and error_code(error) not in MODELED_ERRORS


# --------------------------------------------------------------------------------------------------
# Collecting
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    name: str
    status: str
    created: datetime | None
    ended: datetime | None
    base_model: str
    digest: str
    failure: str | None = None


@dataclass
class FineTuningStatus:
    """What exists in AWS for one fine-tuning; `problems` holds sections that could not be read."""

    environment: str
    fine_tuning: str
    region: str
    jobs: list[JobInfo] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    gate: list[str] | None = None  # the evaluation gate's trials and winner (None: not gated)
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> list[JobInfo]:
        return [job for job in self.jobs if job.status == RUNNING]


@dataclass
class StatusClients:
    bedrock: Any
    ssm: Any


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Collector:
    """Reads the status of fine-tunings; remembers which APIs the endpoint lacks."""

    def __init__(self, clients_for: Callable[[str], StatusClients]) -> None:
        self.clients_for = clients_for
        self.unavailable: dict[str, str] = {}  # operation -> why

    def collect(self, config: FineTuningConfig, region: str) -> FineTuningStatus:
        environment, fine_tuning = config.environment.name, config.name
        status = FineTuningStatus(environment, fine_tuning, region)
        clients = self.clients_for(region)
        self._section(
            status, "jobs", "ListModelCustomizationJobs", lambda: self._jobs(clients.bedrock, status)
        )
        self._section(
            status, "custom models", "ListCustomModels", lambda: self._models(clients.bedrock, status)
        )
        self._section(
            status,
            "provisioned throughput",
            "ListProvisionedModelThroughputs",
            lambda: status.endpoints.extend(
                _describe_throughput(item)
                for item in endpoints.find_throughputs(clients.bedrock, environment, fine_tuning)
            ),
        )
        self._section(
            status,
            "on-demand deployments",
            "ListCustomModelDeployments",
            lambda: status.endpoints.extend(
                f"on-demand deployment {item.name} {item.status}: {item.arn} serving {item.model_arn}"
                for item in endpoints.find_deployments(clients.bedrock, environment, fine_tuning)
            ),
        )
        self._section(status, "SSM parameters", "GetParameter", lambda: self._parameters(clients.ssm, status))
        if config.evaluation is not None:
            status.gate = []
            self._section(
                status, "evaluation gate", "GetParameter", lambda: self._gate(clients.ssm, config, status)
            )
        return status

    def _section(
        self, status: FineTuningStatus, section: str, operation: str, read: Callable[[], Any]
    ) -> None:
        if operation in self.unavailable:
            status.problems[section] = self.unavailable[operation]
            return
        try:
            read()
        except (NoCredentialsError, PartialCredentialsError, NoRegionError, EndpointConnectionError):
            raise
        except (ClientError, NotImplementedError) as error:
            if refused(error):
                raise
            if _unavailable(error):
                self.unavailable[operation] = f"{UNAVAILABLE} ({operation})"
                status.problems[section] = self.unavailable[operation]
            else:
                assert isinstance(error, ClientError)
                status.problems[section] = f"{error_code(error)}: {error_message(error)}"

    def _jobs(self, bedrock: Any, status: FineTuningStatus) -> None:
        prefix = f"{status.environment}-{status.fine_tuning}-"
        summaries = [
            summary
            for summary in endpoints.pages(
                bedrock.list_model_customization_jobs, "modelCustomizationJobSummaries", nameContains=prefix
            )
            if identity.owns_job(status.environment, status.fine_tuning, str(summary.get("jobName", "")))
        ]
        summaries.sort(key=lambda item: _utc(item.get("creationTime")) or datetime.min.replace(tzinfo=UTC))
        for summary in summaries:
            name, job_status = str(summary["jobName"]), str(summary.get("status", "?"))
            failure = None
            if job_status == "Failed":
                try:
                    failure = bedrock.get_model_customization_job(jobIdentifier=name).get("failureMessage")
                except ClientError as error:
                    failure = f"(not readable: {error_code(error)})"
            status.jobs.append(
                JobInfo(
                    name=name,
                    status=job_status,
                    created=_utc(summary.get("creationTime")),
                    ended=_utc(summary.get("endTime")) if job_status != RUNNING else None,
                    base_model=str(summary.get("baseModelArn", "?")).rsplit("/", 1)[-1],
                    digest=_data_digest(bedrock, str(summary.get("jobArn", "")), name),
                    failure=failure,
                )
            )

    def _models(self, bedrock: Any, status: FineTuningStatus) -> None:
        for summary in endpoints.pages(
            bedrock.list_custom_models,
            "modelSummaries",
            nameContains=f"{status.environment}-{status.fine_tuning}-",
        ):
            name = str(summary.get("modelName", ""))
            if identity.owns_job(status.environment, status.fine_tuning, name):
                created = _utc(summary.get("creationTime"))
                status.models.append(f"{name}: {summary.get('modelArn', '?')} (created {_when(created)})")

    def _parameters(self, ssm: Any, status: FineTuningStatus) -> None:
        for name in (identity.MODEL_ARN_PARAMETER, identity.ENDPOINT_ARN_PARAMETER):
            path = identity.ssm_parameter_name(status.environment, status.fine_tuning, name)
            value = parameters.get(ssm, status.environment, status.fine_tuning, name)
            status.parameters.append(f"{path} = {value if value is not None else '(not set)'}")

    def _gate(self, ssm: Any, config: FineTuningConfig, status: FineTuningStatus) -> None:
        """Each trial's record (`trial-<name>`: state, scores, verdict) and the gate's winner."""
        lines: list[str] = []
        status.gate = lines

        def read(name: str) -> str | None:
            return parameters.get(ssm, status.environment, status.fine_tuning, name)

        for trial in config.trials:
            text = read(identity.trial_parameter(trial.trial_name))
            record = TrialRecord.from_json(text) if text else None
            if record is None:
                lines.append(f"{trial.trial_name} ({trial.base_model}): waiting for its job to complete")
                continue
            scores = (record.scores or {}).get("scores") or {}
            shown = ", ".join(
                f"{metric} {value:.4f}" if isinstance(value, int | float) else f"{metric} -"
                for metric, value in scores.items()
            )
            misses = (record.verdict or {}).get("misses") or []
            detail = f"; {misses[0]}" if misses else (f"; {record.reason}" if record.reason else "")
            lines.append(
                f"{trial.trial_name}: {record.state} (job {record.job_name})"
                + (f"; {shown}" if shown else "")
                + detail
            )
        winner = _json_object(read(identity.WINNER_PARAMETER))
        if winner is None:
            lines.append("winner: not decided yet")
        elif winner.get("trial"):
            lines.append(f"winner: {winner['trial']} ({winner.get('model_arn')})")
        else:
            lines.append(f"winner: none ({winner.get('reason')})")


def _json_object(text: str | None) -> dict[str, Any] | None:
    """A parameter's JSON object; None when unset or not a JSON object."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _data_digest(bedrock: Any, job_arn: str, name: str) -> str:
    try:
        tags = {
            tag["key"]: tag["value"]
            for tag in bedrock.list_tags_for_resource(resourceARN=job_arn).get("tags", [])
        }
    except (ClientError, NotImplementedError):
        tags = {}
    data = tags.get("finetune:data-sha256")
    if data:
        return f"data sha256 {data[: identity.SHORT_DIGEST]}"
    return f"job digest {name.rsplit('-', 1)[-1]} (from the name; no data tag readable)"


def _describe_throughput(item: endpoints.Throughput) -> str:
    if item.commitment:
        expiry = _when(_utc(item.commitment_expires)) if item.commitment_expires else "expiry not reported"
        term = f"{item.commitment} commitment until {expiry}"
    else:
        term = "no commitment (billed hourly until deleted)"
    return (
        f"provisioned throughput {item.name} {item.status}, {item.model_units} model unit(s), {term}: "
        f"{item.arn} serving {item.model_arn}"
    )


# --------------------------------------------------------------------------------------------------
# Rendering and watching
# --------------------------------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def render(status: FineTuningStatus, now: datetime) -> list[str]:
    lines = [f"{status.environment}/{status.fine_tuning} ({status.region})"]

    def section(title: str, items: list[str], empty: str, *problem_keys: str) -> None:
        lines.append(f"  {title}:")
        problems = [status.problems[key] for key in problem_keys if key in status.problems]
        lines.extend(f"    {problem}" for problem in dict.fromkeys(problems))
        lines.extend(f"    {item}" for item in items)
        if not items and not problems:
            lines.append(f"    {empty}")

    jobs = []
    for job in status.jobs:
        timing = f"created {_when(job.created)}"
        if job.status == RUNNING and job.created:
            timing += f", running for {_duration((now - job.created).total_seconds())}"
        elif job.ended:
            timing += f", ended {_when(job.ended)}"
        jobs.append(f"{job.name}  {job.status}  {timing}  base {job.base_model}  {job.digest}")
        if job.failure:
            jobs.append(f"  failure: {job.failure}")
    section("jobs", jobs, "none", "jobs")
    section("custom models", status.models, "none", "custom models")
    section("serving", status.endpoints, "nothing serving", "provisioned throughput", "on-demand deployments")
    section("SSM parameters", status.parameters, "none", "SSM parameters")
    if status.gate is not None:
        section("evaluation gate", status.gate, "no record yet", "evaluation gate")
    return lines


def watch(
    snapshot: Callable[[], list[FineTuningStatus]],
    *,
    interval: float,
    out: Callable[[str], None],
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    now: Now = lambda: datetime.now(UTC),
    once: bool = False,
) -> list[FineTuningStatus]:
    """Print the status; unless `once`, again every `interval` s until no job is InProgress."""
    started = clock()
    while True:
        statuses = snapshot()
        moment = now()
        if not once:
            out(f"--- {_when(moment)}, watching for {_duration(clock() - started)} ---")
        for status in statuses:
            for line in render(status, moment):
                out(line)
        running = [job for status in statuses for job in status.running]
        if once:
            return statuses
        if not running:
            out("no job in progress: done")
            return statuses
        progress = ", ".join(
            f"{job.name} {job.status} for {_duration((moment - job.created).total_seconds()) if job.created else '?'}"
            for job in running
        )
        out(f"{len(running)} job(s) in progress: {progress}; next check in {_duration(interval)}")
        sleep(interval)


# --------------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show jobs, custom models, serving endpoints and SSM parameters of an environment",
        description="Reads (never changes) what runs in AWS for each fine-tuning of ENV: customization "
        "jobs, custom models, provisioned throughputs / on-demand deployments and the SSM parameters. "
        "Exit 0; 2 for usage errors (unknown environment or fine-tuning, no region or credentials).",
    )
    parser.add_argument("environment", metavar="ENV", help="an environment of cdk.json, e.g. dev")
    parser.add_argument(
        "fine_tuning", metavar="FINE_TUNING", nargs="?", help="one fine-tuning (default: all)"
    )
    parser.add_argument(
        "--endpoint-url", default=None, help="another endpoint for every call (e.g. moto's server)"
    )
    parser.add_argument(
        "--region", default=None, help="the region to read (default: each fine-tuning's region)"
    )
    parser.add_argument("--watch", action="store_true", help="print again until no job is InProgress")
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_SECONDS,
        help=f"seconds between prints with --watch (default: {DEFAULT_INTERVAL_SECONDS:.0f})",
    )
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.set_defaults(handler=run)


def select(
    configs: tuple[FineTuningConfig, ...], environment: str, fine_tuning: str | None
) -> list[FineTuningConfig]:
    """The fine-tunings of `environment` (only `fine_tuning` when given); UsageError names the known ones."""
    environments = sorted({config.environment.name for config in configs})
    if environment not in environments:
        raise UsageError(f"no environment {environment!r} in cdk.json; known: {', '.join(environments)}")
    chosen = [config for config in configs if config.environment.name == environment]
    if fine_tuning is not None:
        names = sorted(config.name for config in chosen)
        chosen = [config for config in chosen if config.name == fine_tuning]
        if not chosen:
            raise UsageError(
                f"no fine-tuning {fine_tuning!r} in environment {environment!r}; known: {', '.join(names)}"
            )
    return chosen


def run(
    args: argparse.Namespace,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    now: Now = lambda: datetime.now(UTC),
) -> int:
    from finetune.core.project import load_config

    if args.interval <= 0:
        raise UsageError(f"--interval {args.interval}: expected a number of seconds > 0")
    config = project_input(load_config, args.project)
    chosen = select(config.fine_tunings, args.environment, args.fine_tuning)
    clients: dict[str, StatusClients] = {}

    def clients_for(region: str) -> StatusClients:
        if region not in clients:
            clients[region] = StatusClients(
                bedrock=aws_client("bedrock", endpoint_url=args.endpoint_url, region=region),
                ssm=aws_client("ssm", endpoint_url=args.endpoint_url, region=region),
            )
        return clients[region]

    collector = Collector(clients_for)

    def snapshot() -> list[FineTuningStatus]:
        return [collector.collect(item, args.region or item.region) for item in chosen]

    try:
        watch(
            snapshot,
            interval=args.interval,
            out=lambda line: print(line, flush=True),
            clock=clock,
            sleep=sleep,
            now=now,
            once=not args.watch,
        )
    except (BotoCoreError, ClientError) as error:
        raise usage_error_for(error) from error
    return EXIT_OK
