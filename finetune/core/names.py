"""Deterministic names and tokens of the Bedrock resources a fine-tuning creates.

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
            "finetune:data-sha256": self.training_sha256,
            "finetune:job-digest": self.digest,
        }


def job_name_prefix(environment: str, fine_tuning: str) -> str:
    return f"{environment}-{fine_tuning}-"


def owns_job(environment: str, fine_tuning: str, job_name: str) -> bool:
    """True when `job_name` is one of this fine-tuning's jobs (any generation of any spec)."""
    prefix = job_name_prefix(environment, fine_tuning)
    return job_name.startswith(prefix) and JOB_SUFFIX.fullmatch(job_name[len(prefix) :]) is not None


def resource_tags(environment: str, fine_tuning: str) -> dict[str, str]:
    """The tags that identify a fine-tuning's resources, in CloudFormation and Bedrock alike."""
    return {
        "finetune:environment": environment,
        "finetune:fine-tuning": fine_tuning,
        "finetune:stack": f"{environment}-{fine_tuning}",
    }


def ssm_parameter_name(environment: str, fine_tuning: str, name: str) -> str:
    """`/finetune/dev/support-assistant/custom-model-arn`."""
    return f"{SSM_PREFIX}/{environment}/{fine_tuning}/{name}"
