"""finetune.aws.evaluation against moto's S3 and the evaluation and Converse fakes."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from finetune.aws import evaluation
from finetune.aws.evaluation import (
    EvaluationRejected,
    EvaluationRequest,
    EvaluationResultsError,
    GenerationError,
    InferenceParams,
    evaluation_job_name,
    find_evaluation,
    generate_responses,
    get_evaluation,
    read_results,
    start_evaluation,
    stop_evaluation,
)
from finetune.cli.local_evaluation import fake_answer
from finetune.core.deadline import Deadline, DeadlineError
from tests.fakes import (
    ACCOUNT,
    DEPLOYMENT_ARN,
    EVALUATION_BUCKET,
    JUDGE,
    PT_ARN,
    REGION,
    EvaluationLab,
    make_evaluation_lab,
)
from tests.fakes import (
    EVALUATION_PROMPTS as PROMPTS,
)
from tests.fakes import (
    EVALUATION_ROLE as ROLE,
)

BASE = "dev-support-assistant-1a2b3c4d5r1"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
OUTPUT = f"s3://{EVALUATION_BUCKET}/results"
DATASET_KEY = "datasets/support.jsonl"
RESPONSES_KEY = "byoi/custom.jsonl"
RESPONSES = f"s3://{EVALUATION_BUCKET}/{RESPONSES_KEY}"


@pytest.fixture
def lab(fake_aws_credentials: None) -> Iterator[EvaluationLab]:
    with mock_aws():
        built = make_evaluation_lab()
        built.put(DATASET_KEY, [json.dumps(record) for record in PROMPTS])
        yield built


def byoi_request(**changes: Any) -> EvaluationRequest:
    """The custom model's judge job on its own responses."""
    fields: dict[str, Any] = {
        "job_name": evaluation_job_name(BASE, "custom"),
        "role_arn": ROLE,
        "dataset_s3_uri": RESPONSES,
        "output_s3_uri": OUTPUT,
        "metrics": ("Builtin.Correctness", "Builtin.Helpfulness"),
        "task_type": "General",
        "judge_model": JUDGE,
        "precomputed_label": "custom",
        "tags": {"finetune:environment": "dev", "finetune:fine-tuning": "support-assistant"},
        **changes,
    }
    return EvaluationRequest(**fields)


def pt_request(**changes: Any) -> EvaluationRequest:
    """A programmatic job on a provisioned throughput that Bedrock invokes."""
    fields: dict[str, Any] = {
        "job_name": evaluation_job_name(BASE, "custom"),
        "role_arn": ROLE,
        "dataset_s3_uri": f"s3://{EVALUATION_BUCKET}/{DATASET_KEY}",
        "output_s3_uri": OUTPUT,
        "metrics": ("Builtin.Accuracy", "Builtin.Robustness"),
        "task_type": "QuestionAndAnswer",
        "model_identifier": PT_ARN,
        "inference_params": InferenceParams(max_tokens=512, temperature=0.0),
        "kms_key_arn": KMS_KEY,
        **changes,
    }
    return EvaluationRequest(**fields)


def generate(lab: EvaluationLab, model_id: str, **changes: Any) -> evaluation.GenerationResult:
    arguments: dict[str, Any] = {
        "model_id": model_id,
        "dataset_s3_uri": f"s3://{EVALUATION_BUCKET}/{DATASET_KEY}",
        "responses_s3_uri": RESPONSES,
        "label": "custom",
        "max_tokens": 256,
        "temperature": 0.0,
        "deadline": Deadline(expires_at=float("inf")),
        "sleep": lambda _seconds: None,
        **changes,
    }
    return generate_responses(lab.runtime, lab.s3, **arguments)


def written(lab: EvaluationLab) -> bool:
    return RESPONSES_KEY in lab.object_keys()


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------


def test_a_job_name_is_the_base_and_the_label() -> None:
    assert evaluation_job_name(BASE, "custom") == f"{BASE}-custom"
    assert evaluation_job_name(BASE, "base") == f"{BASE}-base"


def test_a_name_too_long_is_cut_and_hashed_stable_and_distinct_per_label() -> None:
    base = "prod-" + "customer-support-assistant-" * 2 + "1a2b3c4d5e6f"

    custom, again, other = (evaluation_job_name(base, label) for label in ("custom", "custom", "base"))

    assert len(custom) == 63 and evaluation.is_evaluation_job_name(custom)
    assert custom == again != other
    assert re.fullmatch(rf"{base[:52]}-[0-9a-f]{{10}}", custom)


def test_names_that_would_read_alike_stay_distinct() -> None:
    pairs = [
        ("dev-x", "custom"),
        ("dev", "x-custom"),
        ("dev", "Custom"),
        ("dev", "custom.v2"),
        ("dev", "custom-v2"),
    ]

    produced = [evaluation_job_name(base, label) for base, label in pairs]

    assert len(set(produced)) == len(pairs)
    assert all(evaluation.is_evaluation_job_name(name) for name in produced)


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=40)),
        min_size=2,
        max_size=6,
        unique=True,
    )
)
def test_every_base_and_label_give_a_valid_name_of_their_own(pairs: list[tuple[str, str]]) -> None:
    produced = [evaluation_job_name(base, label) for base, label in pairs]

    assert all(evaluation.is_evaluation_job_name(name) for name in produced)
    assert len(set(produced)) == len(pairs)


def test_the_patterns_are_botocores() -> None:
    shapes = botocore.session.get_session().get_service_model("bedrock")
    expected = {
        "EvaluationJobName": evaluation.EVALUATION_JOB_NAME,
        "EvaluationJobArn": evaluation.EVALUATION_JOB_ARN,
        "S3Uri": evaluation.S3_URI,
        "RoleArn": evaluation.ROLE_ARN,
        "KmsKeyId": evaluation.KMS_KEY_ID,
        "EvaluationPrecomputedInferenceSourceIdentifier": evaluation.INFERENCE_SOURCE_IDENTIFIER,
        "EvaluationDatasetName": evaluation.DATASET_OR_METRIC_NAME,
        "EvaluationMetricName": evaluation.DATASET_OR_METRIC_NAME,
        "EvaluationBedrockModelIdentifier": evaluation.EVALUATED_MODEL_IDENTIFIER,
        "EvaluatorModelIdentifier": evaluation.EVALUATOR_MODEL_IDENTIFIER,
    }
    for shape, pattern in expected.items():
        assert shapes.shape_for(shape).metadata["pattern"] == pattern.pattern, shape
    assert set(shapes.shape_for("EvaluationTaskType").metadata["enum"]) == evaluation.PROGRAMMATIC_TASK_TYPES


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"model_identifier": PT_ARN}, "exactly one of model_identifier"),
        ({"precomputed_label": None}, "exactly one of model_identifier"),
        (
            {"judge_model": None, "metrics": ("Builtin.Accuracy",), "task_type": "Generation"},
            "needs a judge_model",
        ),
        ({"precomputed_label": "amazon.nova-micro-v1:0"}, "no ':' or '/'"),
        ({"dataset_s3_uri": f"s3://{EVALUATION_BUCKET}/byoi/run=1/custom.jsonl"}, "dataset_s3_uri"),
        ({"dataset_s3_uri": f"s3://{EVALUATION_BUCKET}/byoi/custom.json"}, "must name a .jsonl file"),
        ({"output_s3_uri": f"s3://{EVALUATION_BUCKET}/results by day/"}, "output_s3_uri"),
        ({"job_name": "Dev-Support.custom"}, "job_name"),
        ({"metrics": ("Builtin.Correctness", "Builtin.Accuracy")}, "computed without a judge"),
        ({"metrics": ()}, "1 to 25 metric names"),
        ({"judge_model": PT_ARN}, "judge_model"),
        ({"inference_params": InferenceParams(256, 0.0)}, "apply only when Bedrock invokes the model"),
        ({"kms_key_arn": "my-key"}, "kms_key_arn"),
        ({"role_arn": "evaluation"}, "role_arn"),
    ],
)
def test_a_request_whose_parts_disagree_is_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        byoi_request(**changes)


def test_a_deployment_arn_is_refused_with_what_to_do_instead() -> None:
    with pytest.raises(
        ValueError, match=r"generate its responses \(generate_responses\) and give precomputed_label"
    ):
        pt_request(model_identifier=DEPLOYMENT_ARN)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        byoi_request(job_name="Bad_Name", role_arn="role", judge_model=None)

    lines = str(caught.value).splitlines()
    assert lines[0] == "evaluation job 'Bad_Name' cannot be requested:"
    assert [line.split(" ", 2)[1] for line in lines[1:]] == [
        "job_name",  # not lowercase
        "role_arn",  # not an ARN
        "precomputed_label",  # BYOI needs a judge
        "metrics",  # judge metrics need one
        "task_type",  # as does General
    ]


def test_a_byoi_judge_job_is_requested_as_the_api_wants_it(lab: EvaluationLab) -> None:
    kwargs = byoi_request().create_kwargs()

    token = kwargs.pop("clientRequestToken")
    assert kwargs == {
        "jobName": f"{BASE}-custom",
        "roleArn": ROLE,
        "applicationType": "ModelEvaluation",
        "evaluationConfig": {
            "automated": {
                "datasetMetricConfigs": [
                    {
                        "taskType": "General",
                        "dataset": {"name": "custom", "datasetLocation": {"s3Uri": RESPONSES}},
                        "metricNames": ["Builtin.Correctness", "Builtin.Helpfulness"],
                    }
                ],
                "evaluatorModelConfig": {"bedrockEvaluatorModels": [{"modelIdentifier": JUDGE}]},
            }
        },
        "inferenceConfig": {
            "models": [{"precomputedInferenceSource": {"inferenceSourceIdentifier": "custom"}}]
        },
        "outputDataConfig": {"s3Uri": OUTPUT},
        "jobTags": [
            {"key": "finetune:environment", "value": "dev"},
            {"key": "finetune:fine-tuning", "value": "support-assistant"},
        ],
    }
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    lab.bedrock.create_evaluation_job(
        **kwargs, clientRequestToken=token
    )  # botocore's and the service's checks


def test_a_job_on_a_provisioned_throughput_carries_converse_style_inference_params(
    lab: EvaluationLab,
) -> None:
    kwargs = pt_request(dataset_name="support-v1").create_kwargs()

    assert kwargs["inferenceConfig"] == {
        "models": [
            {
                "bedrockModel": {
                    "modelIdentifier": PT_ARN,
                    "inferenceParams": '{"inferenceConfig":{"maxTokens":512,"temperature":0.0}}',
                }
            }
        ]
    }
    assert kwargs["customerEncryptionKeyId"] == KMS_KEY
    assert "evaluatorModelConfig" not in kwargs["evaluationConfig"]["automated"]
    assert (
        kwargs["evaluationConfig"]["automated"]["datasetMetricConfigs"][0]["dataset"]["name"] == "support-v1"
    )
    assert "jobTags" not in kwargs
    lab.bedrock.create_evaluation_job(**kwargs)


def test_the_request_token_is_the_same_for_the_same_request_and_differs_for_any_change() -> None:
    token = byoi_request().create_kwargs()["clientRequestToken"]

    assert byoi_request().create_kwargs()["clientRequestToken"] == token
    changes: tuple[dict[str, Any], ...] = (
        {"metrics": ("Builtin.Correctness",)},
        {"tags": {}},
        {"judge_model": "amazon.nova-micro-v1:0"},
    )
    for change in changes:
        assert byoi_request(**change).create_kwargs()["clientRequestToken"] != token


# --------------------------------------------------------------------------------------------------
# Start, find, get, stop
# --------------------------------------------------------------------------------------------------


def test_start_creates_the_job_once_and_then_finds_it(lab: EvaluationLab) -> None:
    first = start_evaluation(lab.bedrock, byoi_request())
    again = start_evaluation(lab.bedrock, byoi_request())

    assert (first.started, first.status, again.started) == (True, "InProgress", False)
    assert again.job_arn == first.job_arn
    assert again.creation_time is not None
    assert len(lab.bedrock.calls_of("create_evaluation_job")) == 1


class Wrapped:
    """The evaluation fake, with one call changed by a subclass."""

    def __init__(self, bedrock: Any) -> None:
        self.bedrock = bedrock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bedrock, name)


class Unlisted(Wrapped):
    """A Bedrock whose list does not show jobs yet (the list is eventually consistent)."""

    def list_evaluation_jobs(self, **kwargs: Any) -> dict[str, Any]:
        return {"jobSummaries": []}


def test_a_retried_create_that_the_list_did_not_show_yet_is_the_same_job(lab: EvaluationLab) -> None:
    first = start_evaluation(Unlisted(lab.bedrock), byoi_request())
    again = start_evaluation(Unlisted(lab.bedrock), byoi_request())

    assert again.job_arn == first.job_arn
    assert len(lab.bedrock.jobs) == 1
    assert len(lab.bedrock.calls_of("create_evaluation_job")) == 2


class Racing(Wrapped):
    """A Bedrock where another run creates the job (under its own token) just before ours."""

    rival_arn: str | None = None

    def create_evaluation_job(self, **kwargs: Any) -> dict[str, Any]:
        if self.rival_arn is None:
            rival = self.bedrock.create_evaluation_job(**{**kwargs, "clientRequestToken": "rival-run"})
            self.rival_arn = str(rival["jobArn"])
        result: dict[str, Any] = self.bedrock.create_evaluation_job(**kwargs)
        return result


@pytest.mark.parametrize("code", ["ConflictException", "ValidationException"])
def test_a_start_that_loses_the_race_adopts_the_winners_job(lab: EvaluationLab, code: str) -> None:
    lab.bedrock.name_taken_code = code  # ValidationException: adopted by its "already exists" message
    racing = Racing(lab.bedrock)

    state = start_evaluation(racing, byoi_request())

    assert (state.job_arn, state.started) == (racing.rival_arn, False)
    assert len(lab.bedrock.jobs) == 1


@pytest.mark.parametrize(
    "code",
    [
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ServiceQuotaExceededException",
    ],
)
def test_a_final_refusal_is_evaluation_rejected(lab: EvaluationLab, code: str) -> None:
    lab.bedrock.fail_next("create_evaluation_job", code, "no")

    with pytest.raises(EvaluationRejected) as caught:
        start_evaluation(lab.bedrock, byoi_request())

    assert (caught.value.code, caught.value.message) == (code, "no")
    assert str(caught.value).startswith(f"Bedrock rejected evaluation job {BASE}-custom: {code}: no")


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalServerException"])
def test_a_transient_error_propagates_for_the_callers_retry(lab: EvaluationLab, code: str) -> None:
    lab.bedrock.fail_next("create_evaluation_job", code)

    with pytest.raises(ClientError) as caught:
        start_evaluation(lab.bedrock, byoi_request())

    assert caught.value.response["Error"]["Code"] == code
    assert start_evaluation(lab.bedrock, byoi_request()).started


def test_find_matches_the_exact_name_across_pages(lab: EvaluationLab) -> None:
    wanted = start_evaluation(lab.bedrock, byoi_request())  # the oldest: listed last, on page 2 of 2
    for label in ("custom2", "custom3", "custom4"):
        start_evaluation(lab.bedrock, byoi_request(job_name=evaluation_job_name(BASE, label)))
    lists_before = len(lab.bedrock.calls_of("list_evaluation_jobs"))

    found = find_evaluation(lab.bedrock, f"{BASE}-custom")

    assert found is not None and (found.job_name, found.job_arn) == (f"{BASE}-custom", wanted.job_arn)
    assert lab.bedrock.calls_of("list_evaluation_jobs")[lists_before:] == [
        {"nameContains": f"{BASE}-custom"},
        {"nameContains": f"{BASE}-custom", "nextToken": "2"},
    ]
    assert find_evaluation(lab.bedrock, f"{BASE}-base") is None


def test_a_failed_job_is_found_with_its_failure_messages(lab: EvaluationLab) -> None:
    started = start_evaluation(lab.bedrock, byoi_request())
    lab.bedrock.fail_evaluation("custom", "The dataset has more than 1000 prompts")
    lab.bedrock.settle()

    found = find_evaluation(lab.bedrock, started.job_name)

    assert found is not None
    assert (found.status, found.terminal, found.completed) == ("Failed", True, False)
    assert found.failure_messages == ("The dataset has more than 1000 prompts",)


def test_get_takes_the_arn_and_a_missing_job_is_rejected(lab: EvaluationLab) -> None:
    started = start_evaluation(lab.bedrock, byoi_request())

    with pytest.raises(ValueError, match="not an evaluation job ARN"):
        get_evaluation(lab.bedrock, started.job_name)
    with pytest.raises(EvaluationRejected) as caught:
        get_evaluation(lab.bedrock, started.job_arn[:-12] + "000000000000")
    assert caught.value.code == "ResourceNotFoundException"
    assert get_evaluation(lab.bedrock, started.job_arn).status == "InProgress"


def test_stop_asks_only_for_a_running_job(lab: EvaluationLab) -> None:
    running = start_evaluation(lab.bedrock, byoi_request())
    ended = start_evaluation(lab.bedrock, pt_request(job_name=evaluation_job_name(BASE, "base")))
    lab.bedrock.hang(running.job_name)
    lab.bedrock.settle()

    assert stop_evaluation(lab.bedrock, running.job_arn) is True
    assert stop_evaluation(lab.bedrock, running.job_arn) is False  # Stopping already
    assert stop_evaluation(lab.bedrock, ended.job_arn) is False
    assert stop_evaluation(lab.bedrock, running.job_arn[:-12] + "000000000000") is False
    assert len(lab.bedrock.calls_of("stop_evaluation_job")) == 1
    lab.bedrock.settle()
    assert get_evaluation(lab.bedrock, running.job_arn).status == "Stopped"


class EndsFirst(Wrapped):
    """A Bedrock where the job ends between the look-up and the stop."""

    def stop_evaluation_job(self, **kwargs: Any) -> dict[str, Any]:
        self.bedrock.settle()
        result: dict[str, Any] = self.bedrock.stop_evaluation_job(**kwargs)
        return result


def test_a_job_that_ends_before_the_stop_is_not_an_error(lab: EvaluationLab) -> None:
    started = start_evaluation(lab.bedrock, byoi_request())

    assert stop_evaluation(EndsFirst(lab.bedrock), started.job_arn) is False
    assert get_evaluation(lab.bedrock, started.job_arn).status == "Failed"  # no responses written yet


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


def test_results_are_every_line_of_every_output_file_of_the_job_across_pages(
    fake_aws_credentials: None,
) -> None:
    with mock_aws():
        lab = make_evaluation_lab(records_per_file=1)
        lab.put(DATASET_KEY, [json.dumps(record) for record in PROMPTS])
        job = start_evaluation(lab.bedrock, pt_request())
        other = start_evaluation(lab.bedrock, pt_request(job_name=evaluation_job_name(BASE, "base")))
        lab.bedrock.set_scores(PT_ARN, {"Builtin.Accuracy": 0.5, "Builtin.Robustness": None})
        lab.bedrock.settle()

        rows = read_results(lab.s3, OUTPUT, job.job_name, job.job_arn, page_size=1)

        listed = lab.s3.list_objects_v2(Bucket=EVALUATION_BUCKET, Prefix=f"results/{job.job_name}/")[
            "Contents"
        ]
        assert len([item for item in listed if item["Key"].endswith("_output.jsonl")]) == 3
        assert len(lab.s3.list_objects_v2(Bucket=EVALUATION_BUCKET, Prefix="results/")["Contents"]) == 8
        assert sorted(row["inputRecord"]["prompt"] for row in rows) == sorted(r["prompt"] for r in PROMPTS)
        assert {
            tuple((s["metricName"], s["result"]) for s in row["automatedEvaluationResult"]["scores"])
            for row in rows
        } == {(("Builtin.Accuracy", 0.5), ("Builtin.Robustness", None))}
        assert len(read_results(lab.s3, f"{OUTPUT}/", other.job_name, other.job_arn)) == 3


def test_no_output_for_the_job_is_a_clear_error(lab: EvaluationLab) -> None:
    job = start_evaluation(lab.bedrock, byoi_request())

    with pytest.raises(
        EvaluationResultsError, match=rf"left no \*_output.jsonl under {OUTPUT}/{job.job_name}/"
    ):
        read_results(lab.s3, OUTPUT, job.job_name, job.job_arn)


def test_results_nested_under_the_job_name_twice_are_found(lab: EvaluationLab) -> None:
    job = start_evaluation(lab.bedrock, byoi_request())
    job_id = job.job_arn.rsplit("/", 1)[-1]
    lab.put(f"results/{job.job_name}/{job.job_name}/{job_id}/models/custom/x_output.jsonl", ['{"a": 1}', ""])

    assert read_results(lab.s3, OUTPUT, job.job_name, job.job_arn) == [{"a": 1}]


def test_a_result_line_that_is_not_json_names_its_file_and_line(lab: EvaluationLab) -> None:
    job = start_evaluation(lab.bedrock, byoi_request())
    key = f"results/{job.job_name}/{job.job_arn.rsplit('/', 1)[-1]}/models/custom/x_output.jsonl"
    lab.put(key, ['{"a": 1}', "", "{truncated"])

    with pytest.raises(
        EvaluationResultsError, match=re.escape(f"s3://{EVALUATION_BUCKET}/{key}:3: not JSON")
    ):
        read_results(lab.s3, OUTPUT, job.job_name, job.job_arn)


# --------------------------------------------------------------------------------------------------
# Bring your own inference
# --------------------------------------------------------------------------------------------------


def test_responses_of_a_deployment_are_written_as_the_byoi_dataset(lab: EvaluationLab) -> None:
    deployment = lab.deployment()

    result = generate(lab, deployment, kms_key_arn=KMS_KEY)

    answers = [fake_answer(deployment, str(record["prompt"])) for record in PROMPTS]
    assert lab.read(RESPONSES_KEY).splitlines() == [
        '{"prompt":"How do I reset my password?","referenceResponse":"Use the reset link.","category":"account",'
        f'"modelResponses":[{{"response":"{answers[0]}","modelIdentifier":"custom"}}]}}',
        f'{{"prompt":"Where is my order?","modelResponses":[{{"response":"{answers[1]}","modelIdentifier":"custom"}}]}}',
        '{"prompt":"Can I get a refund?","category":"billing",'
        f'"modelResponses":[{{"response":"{answers[2]}","modelIdentifier":"custom"}}]}}',
    ]
    head = lab.s3.head_object(Bucket=EVALUATION_BUCKET, Key=RESPONSES_KEY)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS_KEY)
    assert (result.prompts, result.succeeded, result.failed, result.retries) == (3, 3, 0, 0)
    assert (result.input_tokens, result.output_tokens) == (6 + 4 + 5, 8 + 6 + 7)  # the fake counts words
    assert all(
        call["inferenceConfig"] == {"maxTokens": 256, "temperature": 0.0}
        and call["messages"]
        == [{"role": "user", "content": [{"text": call["messages"][0]["content"][0]["text"]}]}]
        for call in lab.runtime.calls_of("converse")
    )


def test_the_byoi_dataset_is_evaluated_and_its_scores_read(lab: EvaluationLab) -> None:
    generate(lab, lab.deployment())
    lab.bedrock.set_scores("custom", {"Builtin.Correctness": 1.0, "Builtin.Helpfulness": 0.5})

    job = start_evaluation(lab.bedrock, byoi_request())
    lab.bedrock.settle()
    rows = read_results(lab.s3, OUTPUT, job.job_name, job.job_arn)

    assert get_evaluation(lab.bedrock, job.job_arn).completed
    assert len(rows) == len(PROMPTS)
    assert {row["modelResponses"][0]["modelIdentifier"] for row in rows} == {"custom"}
    assert {s["result"] for row in rows for s in row["automatedEvaluationResult"]["scores"]} == {1.0, 0.5}


def test_throttling_is_retried_with_backoff(lab: EvaluationLab) -> None:
    lab.runtime.fail_next("converse", "ThrottlingException", "Too many requests", times=3)
    pauses: list[float] = []

    result = generate(lab, lab.deployment(), sleep=pauses.append)

    assert (result.succeeded, result.failed, result.retries) == (3, 0, 3)
    assert len(pauses) == 3 and all(0 < pause <= evaluation.BACKOFF_CAP_SECONDS for pause in pauses)
    assert len(lab.runtime.calls_of("converse")) == 6
    assert len(lab.read(RESPONSES_KEY).splitlines()) == 3


def test_a_prompt_that_fails_for_good_is_counted_and_left_out(lab: EvaluationLab) -> None:
    lab.runtime.fail_prompt("refund", "ValidationException", "Input is too long")

    result = generate(lab, lab.deployment())

    assert (result.succeeded, result.failed) == (2, 1)
    assert result.failure_messages == ("prompt 3 of 3: ValidationException: Input is too long",)
    assert [json.loads(line)["prompt"] for line in lab.read(RESPONSES_KEY).splitlines()] == [
        PROMPTS[0]["prompt"],
        PROMPTS[1]["prompt"],
    ]


def test_a_prompt_still_throttled_after_every_attempt_is_a_failure(lab: EvaluationLab) -> None:
    lab.runtime.fail_prompt("refund", "ThrottlingException", "Too many requests")

    result = generate(lab, lab.deployment(), max_attempts=3)

    assert result.failure_messages == (
        "prompt 3 of 3: ThrottlingException: Too many requests after 3 attempts",
    )
    assert result.retries == 2


def test_at_the_deadline_it_stops_and_writes_nothing(lab: EvaluationLab) -> None:
    calls = lab.runtime.calls
    deadline = Deadline(expires_at=2, clock=lambda: float(len(calls)))  # time passes with each call

    with pytest.raises(DeadlineError, match="nothing was written"):
        generate(lab, lab.deployment(), deadline=deadline, workers=1)

    assert not written(lab)
    assert len(lab.runtime.calls_of("converse")) == 2


def test_a_retry_the_deadline_does_not_leave_time_for_is_not_waited_for(lab: EvaluationLab) -> None:
    lab.runtime.fail_next("converse", "ThrottlingException", times=10)
    ticks = itertools.count()
    deadline = Deadline(expires_at=0.4, clock=lambda: next(ticks) * 0.001)
    pauses: list[float] = []

    with pytest.raises(DeadlineError, match="the deadline comes first"):
        generate(lab, lab.deployment(), deadline=deadline, sleep=pauses.append, workers=1)

    assert pauses == []
    assert not written(lab)


def test_a_model_it_may_not_invoke_ends_the_run_and_writes_nothing(lab: EvaluationLab) -> None:
    with pytest.raises(
        GenerationError, match=f"{DEPLOYMENT_ARN} cannot be invoked \\(ResourceNotFoundException"
    ):
        generate(lab, DEPLOYMENT_ARN, workers=1)

    assert not written(lab)
    assert len(lab.runtime.calls_of("converse")) == 1


def test_when_no_prompt_gets_a_response_nothing_is_written(lab: EvaluationLab) -> None:
    for record in PROMPTS:
        lab.runtime.fail_prompt(str(record["prompt"]), "ModelErrorException", "The model failed")

    with pytest.raises(GenerationError, match=r"no prompt of .* got a response"):
        generate(lab, lab.deployment())

    assert not written(lab)


def test_a_dataset_it_cannot_use_is_reported_by_line_before_any_call(lab: EvaluationLab) -> None:
    lab.put(DATASET_KEY, ['{"prompt": "ok"}', "{broken", '{"referenceResponse": "no prompt"}'])

    with pytest.raises(GenerationError) as caught:
        generate(lab, lab.deployment())

    message = str(caught.value)
    assert f"s3://{EVALUATION_BUCKET}/{DATASET_KEY}:2: not JSON" in message
    assert f'{DATASET_KEY}:3: no "prompt"' in message
    assert lab.runtime.calls_of("converse") == []


def test_the_label_and_the_responses_location_are_checked_first(lab: EvaluationLab) -> None:
    with pytest.raises(ValueError) as caught:
        generate(
            lab, lab.deployment(), label="custom:v1", responses_s3_uri=f"s3://{EVALUATION_BUCKET}/a=b/x.jsonl"
        )

    assert "label 'custom:v1'" in str(caught.value)
    assert "responses_s3_uri" in str(caught.value)
    assert lab.runtime.calls_of("converse") == []


def test_a_request_can_be_copied_with_changes_and_is_checked_again() -> None:
    request = byoi_request()

    with pytest.raises(ValueError, match="needs a judge_model"):
        replace(request, judge_model=None)
