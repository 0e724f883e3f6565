"""What crosses the seam between synth and Lambda: one typed contract per custom resource, function
environment and event payload.

The constructs write a contract (`to_properties`, `to_environment`), the rehearsal writes the same,
and the handlers read it back (`from_properties`, `from_environment`, `from_event`). Reading
collects every problem and raises one `ContractError` naming them all, with where they came from.

Decisions:
- CloudFormation hands every property over as a string, so every value is written as one
  ("true"/"false", whole numbers in decimal, maps as JSON) and parsed back on the Lambda side.
- Property names are part of the deployed contract: renaming one would send every stack an Update.
  They are spelled once, here.
- At synth time some values are CDK tokens (ARNs, the stack id); the contracts carry them as the
  strings CDK gives, and the constructs turn JSON holding tokens into a template value.
- `ServingSettings` is the one type for how a model is served, from cdk.json to the Lambda; its
  limits are checked in one place (`serving_problems`), by the configuration (with field paths) and
  by every reader.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import unquote_plus

from finetune.core import names
from finetune.core.names import JobSpec

if TYPE_CHECKING:
    from finetune.core.evaluation import EvaluationSettings

Mode = Literal["provisioned", "on_demand", "none"]
Commitment = Literal["none", "OneMonth", "SixMonths"]
MODES: tuple[Mode, ...] = ("provisioned", "on_demand", "none")
COMMITMENTS: tuple[Commitment, ...] = ("none", "OneMonth", "SixMonths")
# CloudWatch evaluates an hourly alarm over at most 7 days (CloudWatch user guide, "Evaluating an alarm").
MIN_IDLE_ALARM_HOURS = 1
MAX_IDLE_ALARM_HOURS = 168
DEFAULT_IDLE_ALARM_HOURS = 24
DISTILLATION = "DISTILLATION"


class ContractError(ValueError):
    """Values that do not make a contract: `problems` names each, `where` says what was read."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = list(problems)
        super().__init__(f"invalid {where}: " + "; ".join(self.problems))


def flag(value: bool) -> str:
    return "true" if value else "false"


class _Reader:
    """Reads string values, collecting every problem so one error names them all."""

    def __init__(self, values: Mapping[str, Any], where: str) -> None:
        self.values = values
        self.where = where
        self.problems: list[str] = []

    def required(self, name: str) -> str:
        value = self.values.get(name)
        if not isinstance(value, str) or not value:
            self.problems.append(f"{name} is required (a non-empty string), got {value!r}")
            return ""
        return value

    def optional(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.problems.append(f"{name} must be a string, got {value!r}")
            return None
        return value

    def flag(self, name: str) -> bool:
        value = self.values.get(name, "false")
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            self.problems.append(f'{name} must be "true" or "false", got {value!r}')
        return text == "true"

    def whole_number(self, name: str, default: int) -> int:
        value = self.values.get(name, default)
        try:
            return int(str(value))
        except ValueError:
            self.problems.append(f"{name}: expected a whole number, got {value!r}")
            return default

    def string_map(self, name: str) -> dict[str, str]:
        value = self.values.get(name)
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                self.problems.append(f"{name} is not valid JSON ({error.msg}): {value!r}")
                return {}
        if not isinstance(value, Mapping):
            self.problems.append(f"{name} must be a JSON object of string -> string, got {value!r}")
            return {}
        wrong = sorted(str(key) for key, item in value.items() if not isinstance(item, str))
        if wrong:
            self.problems.append(
                f"{name}: every value must be a string (Bedrock's hyperParameters map); not a string: "
                + ", ".join(wrong)
            )
            return {}
        return {str(key): str(item) for key, item in value.items()}

    def training_budget(self) -> TrainingBudget | None:
        text = self.optional(TrainingBudget.PROPERTY)
        if text is None:
            return None
        try:
            return TrainingBudget.from_json(text, where=self.where)
        except ContractError as error:
            self.problems.extend(error.problems)
            return None

    def check(self, extra: Sequence[str] = ()) -> None:
        problems = [*self.problems, *extra]
        if problems:
            raise ContractError(self.where, problems)


def json_object(text: str | None, name: str, where: str) -> Mapping[str, Any]:
    """A JSON object held in one environment variable; ContractError when missing or malformed."""
    if not text:
        raise ContractError(where, [f"{name} is not set"])
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ContractError(where, [f"{name} is not valid JSON ({error.msg})"]) from None
    if not isinstance(value, Mapping):
        raise ContractError(where, [f"{name} must be a JSON object"])
    return value


# --------------------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServingSettings:
    """How a trained custom model is served: not at all, on demand, or by provisioned throughput.

    Defaults: not served, one model unit, no commitment, an idle alarm after 24 hours.
    """

    mode: Mode = "none"
    model_units: int = 1
    commitment: Commitment = "none"
    idle_alarm_hours: int = DEFAULT_IDLE_ALARM_HOURS


def serving_problems(mode: Any, model_units: Any, commitment: Any, idle_alarm_hours: Any) -> dict[str, str]:
    """{field: what is wrong} for serving values: the one check of their limits."""
    problems: dict[str, str] = {}
    if mode not in MODES:
        problems["mode"] = f"got {mode!r}; accepted: " + " | ".join(repr(m) for m in MODES)
    if commitment not in COMMITMENTS:
        problems["commitment"] = f"got {commitment!r}; accepted: " + " | ".join(repr(c) for c in COMMITMENTS)
    if not _whole(model_units) or model_units < 1:
        problems["model_units"] = f"expected a whole number >= 1, got {model_units!r}"
    if not _whole(idle_alarm_hours) or not MIN_IDLE_ALARM_HOURS <= idle_alarm_hours <= MAX_IDLE_ALARM_HOURS:
        problems["idle_alarm_hours"] = (
            f"expected a whole number of hours from {MIN_IDLE_ALARM_HOURS} to {MAX_IDLE_ALARM_HOURS}, "
            f"got {idle_alarm_hours!r}"
        )
    return problems


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ServingResource:
    """`Custom::ServingLifecycle`'s properties, and (the same JSON) FINETUNE_SERVING of its function.

    `stop_jobs_on_destroy`, `delete_models_on_destroy`: the environment's destroy rules, applied by
    the teardown. `stack_id`: to buy a commitment only once no deploy can roll it back.
    """

    environment: str
    fine_tuning: str
    region: str
    settings: ServingSettings = ServingSettings()
    topic_arn: str | None = None
    stop_jobs_on_destroy: bool = False
    delete_models_on_destroy: bool = False
    stack_id: str | None = None
    gate: EvaluationGate | None = None

    RESOURCE_TYPE = "Custom::ServingLifecycle"
    ENVIRONMENT_VARIABLE = "FINETUNE_SERVING"

    def __post_init__(self) -> None:
        problems = [f"{key}: {message}" for key, message in serving_problems(**vars(self.settings)).items()]
        if not self.environment or not self.fine_tuning or not self.region:
            problems.append("environment, fine_tuning and region must not be empty")
        else:
            for name in (
                names.throughput_name(
                    self.environment, self.fine_tuning, self.settings.model_units, self.settings.commitment
                ),
                names.deployment_name(self.environment, self.fine_tuning),
            ):
                problem = names.bedrock_name_problem(name)
                if problem:
                    problems.append(f"environment/fine_tuning give {problem}")
        if problems:
            raise ContractError("serving settings", problems)

    def to_properties(self) -> dict[str, str]:
        return {
            "Environment": self.environment,
            "FineTuning": self.fine_tuning,
            "Region": self.region,
            "Mode": self.settings.mode,
            "ModelUnits": str(self.settings.model_units),
            "Commitment": self.settings.commitment,
            "IdleAlarmHours": str(self.settings.idle_alarm_hours),
            "TopicArn": self.topic_arn or "",
            "StopJobsOnDestroy": flag(self.stop_jobs_on_destroy),
            "DeleteModelsOnDestroy": flag(self.delete_models_on_destroy),
            "StackId": self.stack_id or "",
            # Only for a gated fine-tuning: the properties of the others stay as they were.
            **({EvaluationGate.PROPERTY: self.gate.to_json()} if self.gate else {}),
        }

    @classmethod
    def from_properties(
        cls, properties: Mapping[str, Any], *, where: str = f"{RESOURCE_TYPE} properties"
    ) -> ServingResource:
        read = _Reader(properties, where)
        environment, fine_tuning, region = (read.required(k) for k in ("Environment", "FineTuning", "Region"))
        mode = str(properties.get("Mode", "none"))
        commitment = str(properties.get("Commitment", "none"))
        units = read.whole_number("ModelUnits", 1)
        hours = read.whole_number("IdleAlarmHours", DEFAULT_IDLE_ALARM_HOURS)
        stop_jobs, delete_models = read.flag("StopJobsOnDestroy"), read.flag("DeleteModelsOnDestroy")
        topic_arn, stack_id = read.optional("TopicArn"), read.optional("StackId")
        read.check()
        gate_json = properties.get(EvaluationGate.PROPERTY)
        gate = EvaluationGate.from_json(str(gate_json), where=where) if gate_json else None
        try:
            return cls(
                environment=environment,
                fine_tuning=fine_tuning,
                region=region,
                settings=ServingSettings(cast(Mode, mode), units, cast(Commitment, commitment), hours),
                topic_arn=topic_arn,
                stop_jobs_on_destroy=stop_jobs,
                delete_models_on_destroy=delete_models,
                stack_id=stack_id,
                gate=gate,
            )
        except ContractError as error:
            raise ContractError(where, error.problems) from None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ServingResource:
        where = f"{cls.ENVIRONMENT_VARIABLE} of the serving function"
        return cls.from_properties(
            json_object(environ.get(cls.ENVIRONMENT_VARIABLE), cls.ENVIRONMENT_VARIABLE, where), where=where
        )


# --------------------------------------------------------------------------------------------------
# Evaluation gate
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateTrial:
    """One trial the gate evaluates: the fine-tuning's own job (names.MAIN_TRIAL) or a candidate's.

    `job_name`: the job synth named (for the main trial the serving function reads the job recorded
    as deployed instead: uploads and retries replace it). `serving_usd_per_30_days`: for ranking
    ties (None: unknown). `on_demand`: the model has an on-demand deployment in the region.
    """

    name: str
    job_name: str
    base_model: str
    serving_usd_per_30_days: float | None = None
    on_demand: bool = False

    @property
    def invocable_base_model(self) -> str:
        """The base model's id for invoking it: without the catalog's `:<n>k` context suffix."""
        return names.without_context_suffix(self.base_model)


@dataclass(frozen=True)
class EvaluationGate:
    """The evaluation gate of a fine-tuning, as the serving function reads it (the `EvaluationGate`
    property of `Custom::ServingLifecycle`, a JSON object, present only for a gated fine-tuning).

    `dataset_key`: the staged prompt dataset in `bucket`; results and BYOI responses go under
    `output_prefix`. `role_arn`: the evaluation jobs' service role.
    """

    settings: EvaluationSettings
    trials: tuple[GateTrial, ...]
    role_arn: str
    bucket: str
    dataset_key: str
    output_prefix: str = names.EVALUATION_PREFIX
    kms_key_arn: str | None = None

    PROPERTY = "EvaluationGate"

    def __post_init__(self) -> None:
        from finetune.core.evaluation import settings_problems  # only gated fine-tunings load the rules

        problems = [f"settings.{field}: {message}" for field, message in settings_problems(self.settings)]
        trial_names = [trial.name for trial in self.trials]
        if names.MAIN_TRIAL not in trial_names or len(set(trial_names)) != len(trial_names):
            problems.append(
                f"trials {trial_names} must name {names.MAIN_TRIAL!r} once and each candidate once"
            )
        for key, value in (
            ("role_arn", self.role_arn),
            ("bucket", self.bucket),
            ("dataset_key", self.dataset_key),
        ):
            if not value:
                problems.append(f"{key} must not be empty")
        if not self.output_prefix.endswith("/"):
            problems.append(f"output_prefix {self.output_prefix!r} must end with '/'")
        if problems:
            raise ContractError("evaluation gate", problems)

    def to_json(self) -> str:
        settings = self.settings
        return json.dumps(
            {
                "settings": {
                    "dataset": settings.dataset,
                    "metrics": list(settings.metrics),
                    "taskType": settings.task_type,
                    "judgeModel": settings.judge_model,
                    "gate": {
                        "minimums": dict(settings.gate.minimums),
                        "maximums": dict(settings.gate.maximums),
                        "beatBase": settings.gate.beat_base,
                    },
                    "maxHours": settings.max_hours,
                    "maxTokens": settings.max_tokens,
                    "temperature": settings.temperature,
                },
                "trials": [
                    {
                        "name": trial.name,
                        "jobName": trial.job_name,
                        "baseModel": trial.base_model,
                        "servingUsdPer30Days": trial.serving_usd_per_30_days,
                        "onDemand": trial.on_demand,
                    }
                    for trial in self.trials
                ],
                "roleArn": self.role_arn,
                "bucket": self.bucket,
                "datasetKey": self.dataset_key,
                "outputPrefix": self.output_prefix,
                "kmsKeyArn": self.kms_key_arn or "",
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, *, where: str) -> EvaluationGate:
        """The gate, or ContractError naming what is missing or malformed."""
        from finetune.core.evaluation import EvaluationSettings, Gate

        try:
            value = json.loads(text)
            raw, gate = value["settings"], value["settings"]["gate"]
            settings = EvaluationSettings(
                dataset=str(raw["dataset"]),
                metrics=tuple(str(metric) for metric in raw["metrics"]),
                gate=Gate(
                    minimums={str(k): float(v) for k, v in gate["minimums"].items()},
                    maximums={str(k): float(v) for k, v in gate["maximums"].items()},
                    beat_base=bool(gate["beatBase"]),
                ),
                task_type=str(raw["taskType"]),
                judge_model=str(raw["judgeModel"]) if raw.get("judgeModel") else None,
                max_hours=int(raw["maxHours"]),
                max_tokens=int(raw["maxTokens"]),
                temperature=float(raw["temperature"]),
            )
            trials = tuple(
                GateTrial(
                    name=str(trial["name"]),
                    job_name=str(trial["jobName"]),
                    base_model=str(trial["baseModel"]),
                    serving_usd_per_30_days=None
                    if trial.get("servingUsdPer30Days") is None
                    else float(trial["servingUsdPer30Days"]),
                    on_demand=bool(trial.get("onDemand")),
                )
                for trial in value["trials"]
            )
            fields = (str(value["roleArn"]), str(value["bucket"]), str(value["datasetKey"]))
            output_prefix, kms_key_arn = str(value["outputPrefix"]), str(value.get("kmsKeyArn") or "") or None
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ContractError(
                where, [f"{cls.PROPERTY} is not a gate's JSON ({type(error).__name__}: {error})"]
            ) from None
        try:
            return cls(settings, trials, *fields, output_prefix=output_prefix, kms_key_arn=kms_key_arn)
        except ContractError as error:
            raise ContractError(where, error.problems) from None

    def trial(self, name: str) -> GateTrial:
        return next(trial for trial in self.trials if trial.name == name)


# --------------------------------------------------------------------------------------------------
# Customization jobs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRate:
    """A job's training cost as a linear function of its data (USD):
    fixed + tokens x per_token + records x per_record.

    `finetune.core.cost` makes it from the prices and the hyperparameters; synth applies it to the
    deployed sample and the job trigger to the data actually staged. `basis` says how it was made,
    for people ("2 epochs x $0.012 per 1k tokens").
    """

    per_token: float = 0.0
    per_record: float = 0.0
    fixed: float = 0.0
    basis: str = ""

    def cost(self, tokens: int, records: int) -> float:
        return self.fixed + tokens * self.per_token + records * self.per_record


@dataclass(frozen=True)
class TrainingBudget:
    """The most one job may cost (`field`: its cdk.json path, for messages), and its rate.

    The job trigger checks it against the data in S3 before it starts a job: an upload under
    incoming/ can be far larger than the sample synth checked.
    """

    limit_usd: float
    rate: TrainingRate
    field: str

    PROPERTY = "TrainingBudget"
    _NUMBERS = ("limitUsd", "perToken", "perRecord", "fixed")

    def excess(self, tokens: int, records: int) -> str | None:
        """Why `tokens` estimated tokens in `records` records are over budget; None when within it."""
        cost = self.rate.cost(tokens, records)
        if cost <= self.limit_usd:
            return None
        return (
            f"the estimated training cost ${cost:,.2f} ({tokens:,} estimated tokens in {records:,} records; "
            f"{self.rate.basis}) exceeds {self.field} = ${self.limit_usd:,.2f} by ${cost - self.limit_usd:,.2f}"
        )

    def to_json(self) -> str:
        rate = self.rate
        return json.dumps(
            {
                "limitUsd": self.limit_usd,
                "perToken": rate.per_token,
                "perRecord": rate.per_record,
                "fixed": rate.fixed,
                "basis": rate.basis,
                "field": self.field,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, *, where: str) -> TrainingBudget:
        value = json_object(text, cls.PROPERTY, where)
        wrong = [key for key in cls._NUMBERS if not _amount(value.get(key))]
        wrong += [key for key in ("basis", "field") if not isinstance(value.get(key), str)]
        if wrong:
            raise ContractError(
                where, [f"{cls.PROPERTY}: {', '.join(wrong)} missing or invalid (amounts >= 0, strings)"]
            )
        rate = TrainingRate(
            per_token=float(value["perToken"]),
            per_record=float(value["perRecord"]),
            fixed=float(value["fixed"]),
            basis=str(value["basis"]),
        )
        return cls(limit_usd=float(value["limitUsd"]), rate=rate, field=str(value["field"]))


def _amount(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """Everything CreateModelCustomizationJob needs: what to train (the spec) and where (S3, IAM, KMS).

    Raises ValueError when the parts disagree: S3 URIs that are not `s3://bucket/key`, a validation
    set without its sha256 in the spec (or the reverse), a distillation without a teacher model or a
    teacher model for another customization type.
    """

    spec: JobSpec
    role_arn: str
    training_s3_uri: str
    validation_s3_uri: str | None
    output_s3_uri: str
    kms_key_arn: str | None = None
    generation: int = 1  # the attempt: a retry after a Failed or Stopped job is the next one

    def __post_init__(self) -> None:
        self.spec.generation_name(self.generation)  # raises ValueError out of range
        names.parse_s3_object_uri(self.training_s3_uri)
        names.parse_s3_uri(self.output_s3_uri)
        if self.validation_s3_uri is not None:
            names.parse_s3_object_uri(self.validation_s3_uri)
        if (self.validation_s3_uri is None) != (self.spec.validation_sha256 is None):
            raise ValueError(
                "a validation data set needs both its S3 URI and its sha256 (the job digest covers it); "
                f"got URI {self.validation_s3_uri!r} and sha256 {self.spec.validation_sha256!r}"
            )
        if self.spec.customization_type == DISTILLATION and not self.spec.teacher_model:
            raise ValueError("a DISTILLATION job needs a teacher model (teacherModelIdentifier)")
        if self.spec.customization_type != DISTILLATION and self.spec.teacher_model:
            raise ValueError(
                f"a teacher model ({self.spec.teacher_model}) is only used by DISTILLATION, "
                f"not by {self.spec.customization_type}"
            )

    @property
    def job_name(self) -> str:
        return self.spec.generation_name(self.generation)

    @property
    def custom_model_name(self) -> str:
        """Named like its job: custom model names are unique too, so each attempt has its own."""
        return self.job_name

    def create_job_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of boto3's `create_model_customization_job` for this request."""
        spec = self.spec
        tags = [{"key": key, "value": value} for key, value in spec.tags().items()]
        kwargs: dict[str, Any] = {
            "jobName": self.job_name,
            "customModelName": self.custom_model_name,
            "roleArn": self.role_arn,
            "clientRequestToken": spec.client_request_token(self.generation),
            "baseModelIdentifier": spec.base_model,
            "customizationType": spec.customization_type,
            "jobTags": tags,
            "customModelTags": list(tags),
            "trainingDataConfig": {"s3Uri": self.training_s3_uri},
            "outputDataConfig": {"s3Uri": self.output_s3_uri},
            "hyperParameters": {key: str(value) for key, value in spec.hyperparameters.items()},
        }
        if self.validation_s3_uri is not None:
            kwargs["validationDataConfig"] = {"validators": [{"s3Uri": self.validation_s3_uri}]}
        if self.kms_key_arn:
            kwargs["customModelKmsKeyId"] = self.kms_key_arn
        if spec.customization_type == DISTILLATION and spec.teacher_model:
            kwargs["customizationConfig"] = {
                "distillationConfig": {"teacherModelConfig": {"teacherModelIdentifier": spec.teacher_model}}
            }
        return kwargs


@dataclass(frozen=True, kw_only=True)
class JobTemplate:
    """What every job of a fine-tuning shares: the base of `Custom::CustomizationJob`'s properties
    and FINETUNE_JOB_TEMPLATE of the trigger function (an upload under incoming/ starts a job with
    it). `stop_superseded`: a job still running when a newer deploy or upload replaces it is stopped.
    """

    environment: str
    fine_tuning: str
    base_model: str
    customization_type: str
    hyperparameters: Mapping[str, str]
    role_arn: str
    output_s3_uri: str
    validation_s3_uri: str | None = None
    validation_sha256: str | None = None
    teacher_model: str | None = None
    kms_key_arn: str | None = None
    stop_superseded: bool = False
    training_budget: TrainingBudget | None = None

    ENVIRONMENT_VARIABLE = "FINETUNE_JOB_TEMPLATE"
    REQUIRED = (
        "Environment",
        "FineTuning",
        "BaseModelIdentifier",
        "CustomizationType",
        "RoleArn",
        "OutputS3Uri",
    )

    @classmethod
    def for_spec(
        cls,
        spec: JobSpec,
        *,
        role_arn: str,
        output_s3_uri: str,
        validation_s3_uri: str | None,
        kms_key_arn: str | None,
        stop_superseded: bool,
        training_budget: TrainingBudget | None = None,
    ) -> JobTemplate:
        return cls(
            environment=spec.environment,
            fine_tuning=spec.fine_tuning,
            base_model=spec.base_model,
            customization_type=spec.customization_type,
            hyperparameters=spec.hyperparameters,
            teacher_model=spec.teacher_model,
            validation_s3_uri=validation_s3_uri,
            validation_sha256=spec.validation_sha256,
            role_arn=role_arn,
            output_s3_uri=output_s3_uri,
            kms_key_arn=kms_key_arn,
            stop_superseded=stop_superseded,
            training_budget=training_budget,
        )

    @property
    def label(self) -> str:
        """`dev/support-assistant`, for messages."""
        return f"{self.environment}/{self.fine_tuning}"

    def spec(self, training_sha256: str) -> JobSpec:
        return JobSpec(
            environment=self.environment,
            fine_tuning=self.fine_tuning,
            base_model=self.base_model,
            customization_type=self.customization_type,
            hyperparameters=dict(self.hyperparameters),
            training_sha256=training_sha256,
            validation_sha256=self.validation_sha256,
            teacher_model=self.teacher_model,
        )

    def request(self, *, training_s3_uri: str, training_sha256: str) -> JobRequest:
        """The request for a job on this training data (ValueError when the parts disagree)."""
        return JobRequest(
            spec=self.spec(training_sha256),
            role_arn=self.role_arn,
            training_s3_uri=training_s3_uri,
            validation_s3_uri=self.validation_s3_uri,
            output_s3_uri=self.output_s3_uri,
            kms_key_arn=self.kms_key_arn,
        )

    def to_properties(self) -> dict[str, str]:
        return {
            "Environment": self.environment,
            "FineTuning": self.fine_tuning,
            "BaseModelIdentifier": self.base_model,
            "CustomizationType": self.customization_type,
            "TeacherModel": self.teacher_model or "",
            "Hyperparameters": json.dumps(dict(self.hyperparameters), sort_keys=True),
            "ValidationDataS3Uri": self.validation_s3_uri or "",
            "ValidationSha256": self.validation_sha256 or "",
            "RoleArn": self.role_arn,
            "OutputS3Uri": self.output_s3_uri,
            "KmsKeyArn": self.kms_key_arn or "",
            "StopSuperseded": flag(self.stop_superseded),
            # Only when set: a new property would send every existing stack's job an Update.
            **({TrainingBudget.PROPERTY: self.training_budget.to_json()} if self.training_budget else {}),
        }

    @classmethod
    def read(cls, read: _Reader) -> JobTemplate:
        """The template's part of `read`'s values (problems are collected in `read`)."""
        return cls(
            environment=read.required("Environment"),
            fine_tuning=read.required("FineTuning"),
            base_model=read.required("BaseModelIdentifier"),
            customization_type=read.required("CustomizationType"),
            hyperparameters=read.string_map("Hyperparameters"),
            teacher_model=read.optional("TeacherModel"),
            validation_s3_uri=read.optional("ValidationDataS3Uri"),
            validation_sha256=read.optional("ValidationSha256"),
            role_arn=read.required("RoleArn"),
            output_s3_uri=read.required("OutputS3Uri"),
            kms_key_arn=read.optional("KmsKeyArn"),
            stop_superseded=read.flag("StopSuperseded"),
            training_budget=read.training_budget(),
        )

    @classmethod
    def from_properties(cls, values: Mapping[str, Any], *, where: str) -> JobTemplate:
        read = _Reader(values, where)
        template = cls.read(read)
        read.check()
        try:
            template.request(
                training_s3_uri="s3://placeholder/training.jsonl", training_sha256="0" * 64
            )  # the parts must agree (validation URI with its sha256, teacher for distillation)
        except ValueError as error:
            raise ContractError(where, [str(error)]) from None
        return template


@dataclass(frozen=True)
class JobResource:
    """`Custom::CustomizationJob`'s properties: the template, the training data, the job's names
    (so that `cdk diff` shows which job a deploy starts, and why) and `stop_on_delete`.

    `trial`: names.MAIN_TRIAL for the fine-tuning's own job (the one recorded as deployed, which
    uploads and retries replace); a candidate's name for a candidate's job, which is trained for the
    evaluation gate and recorded nowhere else.
    """

    template: JobTemplate
    training_s3_uri: str
    training_sha256: str
    stop_on_delete: bool = False
    trial: str = names.MAIN_TRIAL

    RESOURCE_TYPE = "Custom::CustomizationJob"

    @property
    def spec(self) -> JobSpec:
        return self.template.spec(self.training_sha256)

    def request(self) -> JobRequest:
        return self.template.request(
            training_s3_uri=self.training_s3_uri, training_sha256=self.training_sha256
        )

    def to_properties(self) -> dict[str, str]:
        spec = self.spec
        return {
            **self.template.to_properties(),
            "TrainingDataS3Uri": self.training_s3_uri,
            "TrainingSha256": self.training_sha256,
            "JobName": spec.job_name,
            "CustomModelName": spec.custom_model_name,
            "JobDigest": spec.digest,
            "StopOnDelete": flag(self.stop_on_delete),
            # Only for a candidate: the main job's properties stay as they were.
            **({"Trial": self.trial} if self.is_candidate else {}),
        }

    @property
    def is_candidate(self) -> bool:
        return self.trial != names.MAIN_TRIAL

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> JobResource:
        """The resource, or ContractError: also when the names do not match the job the other
        properties define (the template and the function were built from different code)."""
        where = f"{cls.RESOURCE_TYPE} properties"
        read = _Reader(properties, where)
        template = JobTemplate.read(read)
        training_s3_uri = read.required("TrainingDataS3Uri")
        training_sha256 = read.required("TrainingSha256")
        job_name, job_digest = read.required("JobName"), read.required("JobDigest")
        stop_on_delete = read.flag("StopOnDelete")
        trial = read.optional("Trial") or names.MAIN_TRIAL
        read.check()
        resource = cls(template, training_s3_uri, training_sha256, stop_on_delete, trial)
        try:
            resource.request()
        except ValueError as error:
            raise ContractError(where, [str(error)]) from None
        spec = resource.spec
        mismatches = [
            f"{name} is {given!r} but the properties define {derived!r}"
            for name, given, derived in (
                ("JobName", job_name, spec.job_name),
                ("JobDigest", job_digest, spec.digest),
                (
                    "CustomModelName",
                    properties.get("CustomModelName") or spec.custom_model_name,
                    spec.custom_model_name,
                ),
            )
            if given != derived
        ]
        if mismatches:
            raise ContractError(
                where,
                [
                    "they do not describe the job synth named: "
                    + "; ".join(mismatches)
                    + " (the template and this function were built from different code or settings: "
                    "deploy the function and the template of the same version)"
                ],
            )
        return resource


@dataclass(frozen=True)
class TriggerEnvironment:
    """The job trigger function's environment: the template its uploads start jobs with, the topic,
    and the bucket prefixes it watches (`incoming/`) and stages into (`training/`)."""

    template: JobTemplate
    topic_arn: str
    incoming_prefix: str = names.INCOMING_PREFIX
    training_prefix: str = names.TRAINING_PREFIX

    def to_environment(self, template_json: str) -> dict[str, str]:
        """`template_json`: `to_properties()` of the template as JSON (CDK's `to_json_string` at synth)."""
        return {
            JobTemplate.ENVIRONMENT_VARIABLE: template_json,
            "FINETUNE_TOPIC_ARN": self.topic_arn,
            "FINETUNE_INCOMING_PREFIX": self.incoming_prefix,
            "FINETUNE_TRAINING_PREFIX": self.training_prefix,
        }

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> TriggerEnvironment:
        where = "trigger function environment"
        name = JobTemplate.ENVIRONMENT_VARIABLE
        problems: list[str] = []
        template: JobTemplate | None = None
        try:
            template = JobTemplate.from_properties(json_object(environ.get(name), name, where), where=name)
        except ContractError as error:
            problems += [
                problem if problem.startswith(name) else f"{name}: {problem}" for problem in error.problems
            ]
        topic_arn = environ.get("FINETUNE_TOPIC_ARN", "")
        if not topic_arn:
            problems.append("FINETUNE_TOPIC_ARN is not set")
        if problems or template is None:
            raise ContractError(where, problems)
        return cls(
            template=template,
            topic_arn=topic_arn,
            incoming_prefix=environ.get("FINETUNE_INCOMING_PREFIX") or names.INCOMING_PREFIX,
            training_prefix=environ.get("FINETUNE_TRAINING_PREFIX") or names.TRAINING_PREFIX,
        )


# --------------------------------------------------------------------------------------------------
# Data upload
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadResource:
    """`Custom::TrainingDataUpload`'s properties: the CDK asset and where it is staged."""

    source_bucket: str
    source_key: str
    bucket: str
    key: str
    sha256: str
    size_bytes: int

    RESOURCE_TYPE = "Custom::TrainingDataUpload"

    @property
    def s3_uri(self) -> str:
        return names.s3_uri(self.bucket, self.key)

    def to_properties(self) -> dict[str, str]:
        return {
            "SourceBucket": self.source_bucket,
            "SourceKey": self.source_key,
            "Bucket": self.bucket,
            "Key": self.key,
            "Sha256": self.sha256,
            "SizeBytes": str(self.size_bytes),
        }

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> UploadResource:
        read = _Reader(properties, f"{cls.RESOURCE_TYPE} properties")
        source_bucket, source_key = read.required("SourceBucket"), read.required("SourceKey")
        bucket, key, sha256 = read.required("Bucket"), read.required("Key"), read.required("Sha256")
        size = read.whole_number("SizeBytes", -1)
        extra = [] if size >= 0 else ["SizeBytes: expected a whole number >= 0"]
        if sha256 and not names.is_sha256(sha256):
            extra.append(f"Sha256 must be 64 lowercase hex digits, got {sha256!r}")
        read.check(extra)
        return cls(source_bucket, source_key, bucket, key, sha256, size)


# --------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobStateChange:
    """Bedrock's EventBridge `Model Customization Job State Change` (the fields this code reads)."""

    job_name: str
    status: str
    job_arn: str = ""
    output_model_arn: str = ""
    failure_message: str = ""
    end_time: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    SOURCE = "aws.bedrock"
    DETAIL_TYPE = "Model Customization Job State Change"

    @classmethod
    def matches(cls, event: Mapping[str, Any]) -> bool:
        return event.get("source") == cls.SOURCE and event.get("detail-type") == cls.DETAIL_TYPE

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> JobStateChange:
        detail = event.get("detail")
        detail = detail if isinstance(detail, Mapping) else {}
        return cls(
            job_name=str(detail.get("jobName", "")),
            status=str(detail.get("jobStatus", "")),
            job_arn=str(detail.get("jobArn", "")),
            output_model_arn=str(detail.get("outputModelArn", "")),
            failure_message=str(detail.get("failureMessage") or ""),
            end_time=str(detail.get("endTime") or ""),
            detail=detail,
        )


@dataclass(frozen=True)
class ObjectUpload:
    """One object event: the object, whether it was created, and another spelling of its key to try.

    S3 event notifications URL-encode the key ("my data.jsonl" -> "my+data.jsonl"): it is decoded.
    EventBridge's S3 events carry the key as stored (AWS's examples show ":" unencoded); should one
    arrive encoded after all, its decoded spelling is tried when the key as given does not exist.
    """

    bucket: str
    key: str
    created: bool
    event_name: str
    alternative_key: str | None = None

    @property
    def uri(self) -> str:
        return names.s3_uri(self.bucket, self.key)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> list[ObjectUpload] | None:
        """The object events an S3 notification or an EventBridge S3 event holds; None for other
        events (records of other sources in a notification are left out)."""
        records = event.get("Records")
        if isinstance(records, list) and any(_is_s3_record(record) for record in records):
            uploads = []
            for record in records:
                if not _is_s3_record(record):
                    continue
                name = str(record.get("eventName", ""))
                uploads.append(
                    cls(
                        bucket=str(record["s3"]["bucket"]["name"]),
                        key=unquote_plus(str(record["s3"]["object"]["key"])),
                        created=name.startswith("ObjectCreated:"),
                        event_name=name,
                    )
                )
            return uploads
        detail = event.get("detail")
        if event.get("source") == "aws.s3" and isinstance(detail, Mapping):
            key = str(detail["object"]["key"])
            decoded = unquote_plus(key)
            detail_type = str(event.get("detail-type", ""))
            return [
                cls(
                    bucket=str(detail["bucket"]["name"]),
                    key=key,
                    created=detail_type == "Object Created",
                    event_name=detail_type,
                    alternative_key=decoded if decoded != key else None,
                )
            ]
        return None


def _is_s3_record(record: Any) -> bool:
    return isinstance(record, Mapping) and record.get("eventSource") == "aws:s3"
