"""The vocabulary: every name, prefix, tag key, SSM path and name pattern a fine-tuning uses.

Constructs (IAM resources, event patterns), handlers and commands all spell them from here, so a
rename cannot break a policy silently.

Deterministic names and tokens of the Bedrock resources a fine-tuning creates:

Everything that defines a customization job (model, type, teacher, resolved hyperparameters, data
digests) is hashed into one `JobSpec.digest`. The job name, the custom model name and the
`clientRequestToken` derive from it, so:
- the same configuration and data always name the same job: a deploy, a retry or a replayed event
  finds the existing job instead of starting another one (look up the name first, then create
  with the token: real Bedrock deduplicates on the token, moto does not);
- any change that matters names a new job, and `cdk diff` shows the new name to a reviewer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SHORT_DIGEST = 12
# A retry of the same job (its first generation Failed or was Stopped) gets a new name: Bedrock job
# names are unique forever. `<9 hex>r<generation>` is no longer than the 12-hex name.
RETRY_DIGEST = 9
MAX_GENERATION = 99
JOB_SUFFIX = re.compile(rf"[0-9a-f]{{{SHORT_DIGEST}}}|[0-9a-f]{{{RETRY_DIGEST}}}r(?:[2-9]|[1-9][0-9])")
# The SSM parameters consumers read: /finetune/<environment>/<fine-tuning>/<name>.
SSM_PREFIX = "/finetune"
MODEL_ARN_PARAMETER = "custom-model-arn"  # the model served (or to serve) now
ENDPOINT_ARN_PARAMETER = "endpoint-arn"  # the PT or deployment that serves it
SETTINGS_PARAMETER = "serving-settings"  # what the deploy asked for; gone once serving is torn down
DEPLOYED_JOB_PARAMETER = "deployed-job"  # the job whose model is to be served

# The training bucket's top-level prefixes: the Bedrock role reads training/, validation/ and
# media/ (the images and videos records name) and writes output/; uploads under incoming/ start a
# job, output/ never triggers anything.
TRAINING_PREFIX = "training/"
VALIDATION_PREFIX = "validation/"
MEDIA_PREFIX = "media/"
OUTPUT_PREFIX = "output/"
INCOMING_PREFIX = "incoming/"
# The evaluation gate's prefixes: the evaluation role reads prompt datasets under the first and
# writes results (and reads the BYOI responses staged there) under the second.
EVALUATION_DATA_PREFIX = "evaluation-data/"
EVALUATION_PREFIX = "evaluation/"

# The trial of a fine-tuning's own settings; its candidates (`fine_tunings.<ft>.candidates`) are named.
MAIN_TRIAL = "main"

# Tags on every resource of a fine-tuning, Bedrock's included (ownership is name AND tags).
ENVIRONMENT_TAG = "finetune:environment"
FINE_TUNING_TAG = "finetune:fine-tuning"
STACK_TAG = "finetune:stack"
DATA_SHA256_TAG = "finetune:data-sha256"
JOB_DIGEST_TAG = "finetune:job-digest"
MODEL_TAG = "finetune:custom-model-arn"  # on a PT or deployment: the model it serves
# Tags on uploaded objects under incoming/.
STATUS_TAG = "finetune:status"
JOB_TAG = "finetune:job"

# Bedrock's name pattern for PTs and deployments (botocore: ProvisionedModelName, ModelDeploymentName).
BEDROCK_NAME = re.compile(r"([0-9a-zA-Z][_-]?)+")
MAX_BEDROCK_NAME_CHARS = 63
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_SNS_SUBJECT_CHARS = 100


@dataclass(frozen=True)
class JobSpec:
    """What one customization job trains: equal specs are the same job."""

    environment: str
    fine_tuning: str
    base_model: str
    customization_type: str
    hyperparameters: Mapping[str, str]
    training_sha256: str
    validation_sha256: str | None = None
    teacher_model: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # reserved for future settings that define a job

    @property
    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON of every field but the names of environment and fine-tuning."""
        canonical = json.dumps(
            {
                "baseModel": self.base_model,
                "customizationType": self.customization_type,
                "hyperparameters": dict(sorted(self.hyperparameters.items())),
                "teacherModel": self.teacher_model,
                "training": self.training_sha256,
                "validation": self.validation_sha256,
                "extra": dict(sorted(self.extra.items())),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def job_name(self) -> str:
        """`<environment>-<fine-tuning>-<12 hex>`: at most 16 + 1 + 32 + 1 + 12 = 62 characters."""
        return self.generation_name(1)

    def generation_name(self, generation: int) -> str:
        """The name of the `generation`-th attempt at this job: the first is `job_name`, a retry
        `<environment>-<fine-tuning>-<9 hex>r<generation>` (no longer, and still this digest's)."""
        if not 1 <= generation <= MAX_GENERATION:
            raise ValueError(f"a job generation is 1 to {MAX_GENERATION}, got {generation}")
        prefix = job_name_prefix(self.environment, self.fine_tuning)
        if generation == 1:
            return f"{prefix}{self.digest[:SHORT_DIGEST]}"
        return f"{prefix}{self.digest[:RETRY_DIGEST]}r{generation}"

    @property
    def generations_prefix(self) -> str:
        """What every generation's name starts with (for listing them)."""
        return f"{job_name_prefix(self.environment, self.fine_tuning)}{self.digest[:RETRY_DIGEST]}"

    @property
    def custom_model_name(self) -> str:
        """The job's output model: named like the job, so either finds the other."""
        return self.job_name

    def client_request_token(self, generation: int = 1) -> str:
        """Bedrock returns the job of a token it has seen: each generation needs its own token."""
        if generation == 1:
            return self.digest
        return hashlib.sha256(f"{self.digest}:{generation}".encode()).hexdigest()

    def tags(self) -> dict[str, str]:
        """Tags for the job and its custom model (Bedrock resources)."""
        return {
            **resource_tags(self.environment, self.fine_tuning),
            DATA_SHA256_TAG: self.training_sha256,
            JOB_DIGEST_TAG: self.digest,
        }


def without_context_suffix(identifier: str) -> str:
    """`amazon.nova-lite-v1:0:128k` -> `amazon.nova-lite-v1:0` (the id a base model is invoked by);
    other identifiers unchanged."""
    stem, _, suffix = identifier.rpartition(":")
    return stem if stem and suffix[:-1].isdigit() and suffix.endswith("k") else identifier


def job_name_prefix(environment: str, fine_tuning: str) -> str:
    return f"{environment}-{fine_tuning}-"


def owns_job(environment: str, fine_tuning: str, job_name: str) -> bool:
    """True when `job_name` is one of this fine-tuning's jobs (any generation of any spec)."""
    prefix = job_name_prefix(environment, fine_tuning)
    return job_name.startswith(prefix) and JOB_SUFFIX.fullmatch(job_name[len(prefix) :]) is not None


def stack_name(environment: str, fine_tuning: str) -> str:
    return f"{environment}-{fine_tuning}"


def resource_tags(environment: str, fine_tuning: str) -> dict[str, str]:
    """The tags that identify a fine-tuning's resources, in CloudFormation and Bedrock alike."""
    return {
        ENVIRONMENT_TAG: environment,
        FINE_TUNING_TAG: fine_tuning,
        STACK_TAG: stack_name(environment, fine_tuning),
    }


def ssm_parameter_name(environment: str, fine_tuning: str, name: str) -> str:
    """`/finetune/dev/support-assistant/custom-model-arn`."""
    return f"{SSM_PREFIX}/{environment}/{fine_tuning}/{name}"


def ssm_parameter_pattern(environment: str, fine_tuning: str) -> str:
    """The IAM resource name (after `parameter/`) of all of a fine-tuning's parameters."""
    return f"{SSM_PREFIX.lstrip('/')}/{environment}/{fine_tuning}/*"


# --------------------------------------------------------------------------------------------------
# Serving: provisioned throughput, deployments, idle alarms
# --------------------------------------------------------------------------------------------------


def throughput_name(environment: str, fine_tuning: str, model_units: int, commitment: str) -> str:
    """`<env>-<ft>-pt-<8 hex of (units, commitment)>`: a change of either names a new PT (units and
    commitment cannot be updated). With the config's limits it stays under Bedrock's 63 characters."""
    digest = hashlib.sha256(f"{model_units}:{commitment}".encode()).hexdigest()[:8]
    return f"{job_name_prefix(environment, fine_tuning)}pt-{digest}"


def throughput_name_prefix(environment: str, fine_tuning: str) -> str:
    return f"{job_name_prefix(environment, fine_tuning)}pt-"


def owns_throughput_name(environment: str, fine_tuning: str, name: str) -> bool:
    prefix = throughput_name_prefix(environment, fine_tuning)
    return name.startswith(prefix) and re.fullmatch(r"[0-9a-f]{8}", name[len(prefix) :]) is not None


def deployment_name(environment: str, fine_tuning: str) -> str:
    """The one on-demand deployment: it has no units or commitment, a new model is an update."""
    return f"{job_name_prefix(environment, fine_tuning)}od"


def alarm_name_prefix(environment: str, fine_tuning: str) -> str:
    return f"{job_name_prefix(environment, fine_tuning)}pt-idle-"


def alarm_name(environment: str, fine_tuning: str, throughput_arn: str) -> str:
    """One idle alarm per PT, named after the PT's id (the last part of its ARN)."""
    return f"{alarm_name_prefix(environment, fine_tuning)}{throughput_arn.rsplit('/', 1)[-1]}"


def owns_alarm_name(environment: str, fine_tuning: str, name: str) -> bool:
    prefix = alarm_name_prefix(environment, fine_tuning)
    return name.startswith(prefix) and re.fullmatch(r"[a-z0-9]+", name[len(prefix) :]) is not None


def bedrock_name_problem(name: str) -> str | None:
    """Why Bedrock would refuse `name` for a PT or deployment, or None."""
    if len(name) > MAX_BEDROCK_NAME_CHARS or not BEDROCK_NAME.fullmatch(name):
        return (
            f"the Bedrock name {name!r}: it must match {BEDROCK_NAME.pattern} and have at most "
            f"{MAX_BEDROCK_NAME_CHARS} characters"
        )
    return None


# --------------------------------------------------------------------------------------------------
# S3 locations
# --------------------------------------------------------------------------------------------------


def staged_key(prefix: str, fine_tuning: str, sha256: str, file_name: str) -> str:
    """`training/support-assistant/<sha256>/train.jsonl`: content-addressed, so a job always reads
    the bytes it was started for and staging the same file twice is a no-op."""
    return f"{prefix}{fine_tuning}/{sha256}/{file_name}"


def output_key_prefix(fine_tuning: str) -> str:
    """Where Bedrock writes a fine-tuning's job output (`output/<fine-tuning>/`)."""
    return f"{OUTPUT_PREFIX}{fine_tuning}/"


def is_sha256(text: str) -> bool:
    return SHA256_HEX.fullmatch(text) is not None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key"); raises ValueError for anything else.

    The key may be empty (`s3://bucket/` or `s3://bucket`: a bucket or prefix, e.g. an output location).
    """
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}; expected s3://<bucket>/<key>")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in the S3 URI {uri!r}; expected s3://<bucket>/<key>")
    return bucket, key


def parse_s3_object_uri(uri: str) -> tuple[str, str]:
    """Like `parse_s3_uri`, but the URI must name an object (a non-empty key not ending in "/")."""
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise ValueError(f"the S3 URI {uri!r} names no object; expected s3://<bucket>/<key of a file>")
    return bucket, key


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


# --------------------------------------------------------------------------------------------------
# Evaluation gate
# --------------------------------------------------------------------------------------------------

# A temporary endpoint (PT or deployment) made for one trial's evaluation carries the fine-tuning's
# tags plus these two; serving never owns it (its name can be no serving name, see below).
TEMPORARY_TAG = "finetune:temporary"
TEMPORARY_EVALUATION = "evaluation"
TRIAL_TAG = "finetune:trial"
WINNER_PARAMETER = "gate-winner"  # {"trial", "job_name", "model_arn"} or {"trial": null, "reason"}
TEMPORARY_SUFFIX = "eval"
TEMPORARY_HASH_CHARS = 8


def trial_parameter(trial: str) -> str:
    """The SSM parameter (under the fine-tuning's path) that records one trial's state."""
    return f"trial-{trial}"


def base_evaluation_parameter(base_model: str) -> str:
    """The SSM parameter of the base model's evaluation (model ids hold ':', which SSM refuses)."""
    return f"gate-base-{hashlib.sha256(base_model.encode()).hexdigest()[:12]}"


def temporary_endpoint_name(environment: str, fine_tuning: str, trial: str) -> str:
    """`<env>-<ft>-<trial>-eval<8 hex>`, or `<env>-<ft>-eval<8 hex>` when the trial does not fit in
    Bedrock's 63 characters. The hash is of (environment, fine-tuning, trial), so names of
    different trials (and fine-tunings that read alike) differ. It ends in `eval<8 hex>`, which no
    serving name does (`-od`, `-pt-<8 hex>`): `owns_throughput_name` and `deployment_name` of any
    fine-tuning can never match it, and it never matches theirs."""
    digest = hashlib.sha256(f"{environment}\n{fine_tuning}\n{trial}".encode()).hexdigest()
    tail = f"{TEMPORARY_SUFFIX}{digest[:TEMPORARY_HASH_CHARS]}"
    prefix = job_name_prefix(environment, fine_tuning)
    readable = f"{prefix}{trial}-{tail}"
    if len(readable) <= MAX_BEDROCK_NAME_CHARS:
        return readable
    return f"{prefix}{tail}"


def is_temporary_endpoint_name(name: str) -> bool:
    """True for any fine-tuning's temporary endpoint name (the shape, not whose it is)."""
    return re.fullmatch(rf".+-{TEMPORARY_SUFFIX}[0-9a-f]{{{TEMPORARY_HASH_CHARS}}}", name) is not None


def temporary_tags(environment: str, fine_tuning: str, trial: str) -> dict[str, str]:
    return {
        **resource_tags(environment, fine_tuning),
        TEMPORARY_TAG: TEMPORARY_EVALUATION,
        TRIAL_TAG: trial,
    }
