"""A dress rehearsal of one fine-tuning's deployed lifecycle, against moto's server on loopback.

`rehearse()` starts moto's server (`sandbox`), points boto3 at it, and drives the SAME handler
code the stacks deploy, with the event shapes CloudFormation and EventBridge send, built from the
contracts the constructs write:

1. the stack's resources and data (`stack`): KMS key, training bucket (versioned, SSE-KMS), the
   Bedrock service role, the SNS topic with a queue standing in for the e-mail subscription (it is
   how the rehearsal reads notifications); `Custom::TrainingDataUpload` from an "assets" bucket;
2. `Custom::CustomizationJob` Create, and again (a CloudFormation retry) (`training`);
3. `Custom::ServingLifecycle` Create; the job completes; the job state event; a scheduled
   reconcile; a duplicate event; serving switched to `none` and back; teardown; a redeploy whose
   serving Create fails after creating its endpoint, and the rollback's Delete (`serving`);
4. new valid data uploaded under incoming/ (staged, its job started and recorded as the deployed
   job); `Custom::CustomizationJob` Delete.

With an evaluation gate (`fine_tunings.<ft>.evaluation`), the candidates' jobs are created and
completed too, the main job's completion makes one temporary endpoint per trial and serves nothing,
the evaluations run and the gate decides: the winner is served and every temporary endpoint is gone.
With `gate_fails`, the trials' scores are set to miss the gate: nothing is served, the temporary
endpoints are gone, and the topic says which metric missed by how much.

With `bad_data`, a corrupted copy of the training file goes through the rejection paths instead:
the deploy-time Create fails naming `s3://...:LINE`, and an upload under `incoming/` is tagged
rejected and reported on the topic; no job exists at any point.

Custom resource responses go where CloudFormation's go: a pre-signed S3 PUT URL (into a bucket of
the moto server); the rehearsal reads each response back from there. Handler logs are captured, not
printed; `verbose` prints them under the step that produced them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from finetune.cli.rehearsal import serving, stack, training
from finetune.cli.rehearsal.sandbox import LogCapture, aws_pointed_at, handler_clients, moto_endpoint
from finetune.cli.rehearsal.state import RehearsalState
from finetune.cli.rehearsal.timeline import Deviation, Result, Step
from finetune.core.checks import check_fine_tuning
from finetune.core.contracts import Mode
from finetune.core.plan import FineTuningPlan

__all__ = [
    "Deviation",
    "Result",
    "Step",
    "aws_pointed_at",
    "find_plan",
    "moto_endpoint",
    "rehearse",
    "rehearse_project",
]

Action = Callable[[], str]


def find_plan(plans: tuple[FineTuningPlan, ...], environment: str, fine_tuning: str) -> FineTuningPlan:
    """The plan of `<environment>/<fine_tuning>`; LookupError names the known ones."""
    for plan in plans:
        if plan.config.environment.name == environment and plan.config.name == fine_tuning:
            return plan
    known = ", ".join(f"{plan.config.environment.name} {plan.config.name}" for plan in plans)
    raise LookupError(f"no fine-tuning {fine_tuning!r} in environment {environment!r}; known: {known}")


def with_serving_mode(plan: FineTuningPlan, mode: Mode) -> FineTuningPlan:
    """The plan served as `mode`; ValueError when the configuration check would refuse that mode
    (`on_demand` for a model without on-demand deployment): a rehearsal never passes what synth refuses."""
    serving_config = replace(plan.config.serving, mode=mode)
    config = replace(plan.config, serving=serving_config)
    problems = [error for error in check_fine_tuning(config) if ".serving." in f".{error.path}."]
    if problems:
        raise ValueError("; ".join(f"--serving {mode}: {error.message}" for error in problems))
    return replace(plan, config=config)


class Rehearsal:
    """Runs the steps in order; the first deviation stops it (later steps depend on earlier ones)."""

    def __init__(
        self,
        plan: FineTuningPlan,
        *,
        bad_data: bool,
        verbose: bool,
        out: Callable[[str], None],
        gate_fails: bool = False,
    ) -> None:
        if gate_fails and plan.evaluation is None:
            raise ValueError(f"{plan.config.stack_name} has no evaluation gate to fail")
        self.state = RehearsalState(
            plan=plan, serving_mode=plan.config.serving.mode, bad_data=bad_data, gate_fails=gate_fails
        )
        self.verbose = verbose
        self.out = out
        self.result = Result(
            stack=plan.config.stack_name, bad_data=bad_data, serving_mode=plan.config.serving.mode
        )
        self.capture = LogCapture()

    def run(self) -> Result:
        root = logging.getLogger()
        werkzeug = logging.getLogger("werkzeug")
        saved_levels = (root.level, werkzeug.level)
        root.addHandler(self.capture)
        root.setLevel(logging.INFO)
        werkzeug.setLevel(logging.ERROR)  # no request log lines from the server thread
        try:
            with moto_endpoint() as url:
                self.result.endpoint_url = url
                with (
                    aws_pointed_at(url, self.state.region),
                    handler_clients(self.state.region) as (clients, evaluation),
                ):
                    self.state.clients, self.state.evaluation = clients, evaluation
                    self.state.fake = evaluation.backend
                    self.state.account = str(clients["sts"].get_caller_identity()["Account"])
                    self._record("server", lambda: f"moto {url} (region {self.state.region})")
                    for name, action in self.steps():
                        if not self._record(name, action):
                            break
        finally:
            root.removeHandler(self.capture)
            root.setLevel(saved_levels[0])
            werkzeug.setLevel(saved_levels[1])
        return self.result

    def steps(self) -> list[tuple[str, Action]]:
        state = self.state

        def step(function: Callable[..., str], *args: Any) -> Action:
            return partial(function, state, *args)

        setup: list[tuple[str, Action]] = [
            ("kms-key", step(stack.create_key)),
            ("bucket", step(stack.create_bucket)),
            ("role", step(stack.create_role)),
            ("topic", step(stack.create_topic)),
            ("assets", step(stack.upload_assets)),
            ("stage-training", step(stack.stage, "training")),
        ]
        if state.plan.validation is not None:
            setup.append(("stage-validation", step(stack.stage, "validation")))
        if state.gated:
            setup += [
                ("stage-evaluation", step(stack.stage, "evaluation")),
                ("evaluation-role", step(stack.create_evaluation_role)),
            ]
        if state.bad_data:
            return [
                *setup,
                ("job-create-rejected", step(training.create_job_rejected)),
                ("no-job", step(training.expect_jobs, 0)),
                ("rollback-delete", step(training.rollback_delete)),
                ("upload-rejected", step(training.upload_rejected)),
                ("upload-tagged", step(training.upload_tagged)),
                ("upload-notified", step(training.upload_notified)),
                ("still-no-job", step(training.expect_jobs, 0)),
            ]
        failed_create: list[tuple[str, Action]] = []
        if state.serving_mode != "none":
            failed_create = [
                ("redeploy-job", step(training.redeploy_job)),
                ("serving-create-fails", step(serving.create_serving_failing)),
                ("serving-rollback-delete", step(serving.delete_serving)),
            ]
        # Every lifecycle starts and ends alike: the job started (and its start retried), and at the
        # end an upload's job and the job resource's delete.
        start = [
            *setup,
            ("job-create", step(training.create_job)),
            ("one-job", step(training.expect_jobs, 1)),
            ("job-create-retry", step(training.create_job_again)),
        ]
        end = [
            ("upload-accepted", step(training.upload_accepted)),
            ("job-delete", step(training.delete_job)),
        ]
        if state.gated:
            return [*start, *self._gated_steps(step), *end]
        return [
            *start,
            ("serving-create", step(serving.create_serving)),
            ("job-completes", step(training.complete_job)),
            ("completion-event", step(serving.deliver_completion)),
            ("scheduled-reconcile", step(serving.endpoint_ready)),
            ("duplicate-event", step(serving.deliver_duplicate)),
            ("notifications", step(serving.check_notifications)),
            ("serving-none", step(serving.serve_nothing)),
            ("serving-back", step(serving.serve_again)),
            ("serving-delete", step(serving.delete_serving)),
            *failed_create,
            *end,
        ]

    def _gated_steps(self, step: Callable[..., Action]) -> list[tuple[str, Action]]:
        """With an evaluation gate: the candidates train too, nothing is served until the gate
        decides, each trial's temporary endpoint is gone after it, and only a winner is served
        (with `gate_fails`, nothing is, and the topic says which metric missed by how much). A
        serving Create that fails half way is not rehearsed here: behind a gate a Create serves
        nothing (the gate's own faults are finetune.aws.trials' tests); the teardown must leave
        no temporary endpoint and no running evaluation job."""
        candidates = bool(self.state.plan.candidates)
        passed: list[tuple[str, Action]] = []
        if not self.state.gate_fails:
            passed = [
                ("serving-none", step(serving.serve_nothing)),
                ("serving-back", step(serving.serve_again)),
            ]
        return [
            *([("candidate-jobs", step(training.create_candidate_jobs))] if candidates else []),
            ("serving-create", step(serving.create_serving)),
            *([("candidates-complete", step(training.complete_candidates))] if candidates else []),
            ("job-completes", step(training.complete_job)),
            ("gate-endpoints", step(serving.gate_starts)),
            ("gate-evaluations", step(serving.gate_evaluates)),
            ("gate-decides", step(serving.gate_decides)),
            ("gate-notifications", step(serving.check_gate_notifications)),
            *passed,
            ("serving-delete", step(serving.delete_serving)),
            ("nothing-billing", step(serving.nothing_billing)),
        ]

    def _record(self, name: str, action: Action) -> bool:
        try:
            detail, ok = action(), True
        except Deviation as deviation:
            detail, ok = str(deviation), False
        except Exception as error:  # an unexpected failure is a deviation too, with its type
            detail, ok = f"{type(error).__name__}: {error}", False
        step = Step(datetime.now(), name, ok, " ".join(detail.split()), self.capture.take())
        self.result.steps.append(step)
        self.out(step.line())
        if self.verbose:
            for line in step.logs:
                self.out(f"              | {line}")
        return ok


def rehearse(
    plans: tuple[FineTuningPlan, ...],
    environment: str,
    fine_tuning: str,
    *,
    bad_data: bool = False,
    serving_mode: Mode | None = None,
    gate_fails: bool = False,
    verbose: bool = False,
    out: Callable[[str], None] = print,
) -> Result:
    """Rehearse `<environment>/<fine_tuning>` (see the module docstring); LookupError when unknown,
    ValueError when `serving_mode` is one the configuration check refuses for this model."""
    plan = find_plan(plans, environment, fine_tuning)
    if serving_mode is not None and serving_mode != plan.config.serving.mode:
        plan = with_serving_mode(plan, serving_mode)
    return Rehearsal(plan, bad_data=bad_data, gate_fails=gate_fails, verbose=verbose, out=out).run()


def rehearse_project(project_root: Path, environment: str, fine_tuning: str, **options: Any) -> Result:
    """`rehearse()` for the plans of the project at `project_root` (raises ConfigError, LookupError)."""
    from finetune.core.project import load_plans

    plans, _warnings = load_plans(project_root)
    return rehearse(plans, environment, fine_tuning, **options)
