"""The vocabulary: names Bedrock accepts, generations of a job, and which names are a fine-tuning's."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from finetune.core import names
from finetune.core.contracts import COMMITMENTS
from finetune.core.names import JobSpec

NAME = r"[a-z](?:-?[a-z0-9])*"  # finetune.core.config's rule for environment and fine-tuning names
SPEC = JobSpec("dev", "assistant", "m", "FINE_TUNING", {"epochCount": "2"}, "a" * 64)


def test_units_or_commitment_change_the_pt_name() -> None:
    pt = {
        names.throughput_name("dev", "x", 1, "none"),
        names.throughput_name("dev", "x", 2, "none"),
        names.throughput_name("dev", "x", 1, "OneMonth"),
    }
    assert len(pt) == 3
    assert all(names.owns_throughput_name("dev", "x", name) for name in pt)
    assert not names.owns_throughput_name("dev", "x", names.throughput_name("dev", "x-y", 1, "none"))


@given(
    environment=st.from_regex(rf"\A{NAME}\Z").filter(lambda name: len(name) <= 16),
    fine_tuning=st.from_regex(rf"\A{NAME}\Z").filter(lambda name: len(name) <= 32),
    units=st.integers(min_value=1, max_value=10_000),
    commitment=st.sampled_from(COMMITMENTS),
    generation=st.integers(min_value=1, max_value=names.MAX_GENERATION),
)
def test_every_valid_configuration_names_resources_bedrock_accepts(
    environment: str, fine_tuning: str, units: int, commitment: Any, generation: int
) -> None:
    spec = JobSpec(environment, fine_tuning, "m", "FINE_TUNING", {}, "f" * 64)
    job = spec.generation_name(generation)
    for name in (
        names.throughput_name(environment, fine_tuning, units, commitment),
        names.deployment_name(environment, fine_tuning),
        job,
    ):
        assert names.bedrock_name_problem(name) is None, name
    assert names.owns_job(environment, fine_tuning, job)


def test_each_generation_of_a_job_has_its_own_name_and_token_and_is_the_fine_tunings() -> None:
    first, second = SPEC.generation_name(1), SPEC.generation_name(2)
    assert first == SPEC.job_name == f"dev-assistant-{SPEC.digest[:12]}"
    assert second == f"dev-assistant-{SPEC.digest[:9]}r2" and second.startswith(SPEC.generations_prefix)
    assert SPEC.client_request_token(1) != SPEC.client_request_token(2)
    assert names.owns_job("dev", "assistant", first) and names.owns_job("dev", "assistant", second)
    for other in ("dev-assistant-bot-aaaaaaaaaaaa", "dev-assistant-aaaaaaaaar1", "dev-assistant-pt-0a1b2c3d"):
        assert not names.owns_job("dev", "assistant", other), other


def test_locations_and_parameters_are_spelled_once() -> None:
    assert (
        names.staged_key(names.TRAINING_PREFIX, "x", "a" * 64, "t.jsonl") == f"training/x/{'a' * 64}/t.jsonl"
    )
    assert (
        names.ssm_parameter_name("dev", "x", names.DEPLOYED_JOB_PARAMETER) == "/finetune/dev/x/deployed-job"
    )
    assert names.ssm_parameter_pattern("dev", "x") == "finetune/dev/x/*"
    assert (
        names.alarm_name("dev", "x", "arn:aws:bedrock:r:1:provisioned-model/abc123") == "dev-x-pt-idle-abc123"
    )
    assert names.owns_alarm_name("dev", "x", "dev-x-pt-idle-abc123")
    assert names.resource_tags("dev", "x") == {
        names.ENVIRONMENT_TAG: "dev",
        names.FINE_TUNING_TAG: "x",
        names.STACK_TAG: "dev-x",
    }
