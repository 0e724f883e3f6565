"""finetune.cli.local_evaluation: the evaluation-job and Converse fakes refuse what AWS refuses and
leave what AWS leaves (moto's S3 underneath)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from finetune.cli.local_evaluation import DEFAULT_SCORE, PERMISSION_CHECK, fake_answer
from tests.fakes import (
    ACCOUNT,
    CUSTOM_MODEL_ARN,
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

OUTPUT = f"s3://{EVALUATION_BUCKET}/results"


@pytest.fixture
def lab(fake_aws_credentials: None) -> Iterator[EvaluationLab]:
    with mock_aws():
        yield make_evaluation_lab(records_per_file=2)


def byoi_dataset(lab: EvaluationLab, label: str = "custom") -> str:
    lines = [
        json.dumps({**record, "modelResponses": [{"response": f"answer {index}", "modelIdentifier": label}]})
        for index, record in enumerate(PROMPTS)
    ]
    return lab.put("byoi/support.jsonl", lines)


def job_kwargs(
    name: str, dataset_uri: str, model: dict[str, Any], task_type: str, metrics: list[str], judge: str | None
) -> dict[str, Any]:
    automated: dict[str, Any] = {
        "datasetMetricConfigs": [
            {
                "taskType": task_type,
                "dataset": {"name": "support", "datasetLocation": {"s3Uri": dataset_uri}},
                "metricNames": metrics,
            }
        ]
    }
    if judge:
        automated["evaluatorModelConfig"] = {"bedrockEvaluatorModels": [{"modelIdentifier": judge}]}
    return {
        "jobName": name,
        "roleArn": ROLE,
        "evaluationConfig": {"automated": automated},
        "inferenceConfig": {"models": [model]},
        "outputDataConfig": {"s3Uri": OUTPUT},
    }


def judge_job(name: str, dataset_uri: str, *, label: str = "custom", **changes: Any) -> dict[str, Any]:
    """CreateEvaluationJob kwargs of a BYOI judge job."""
    model = {"precomputedInferenceSource": {"inferenceSourceIdentifier": label}}
    metrics = ["Builtin.Correctness", "Builtin.Helpfulness"]
    return {**job_kwargs(name, dataset_uri, model, "General", metrics, JUDGE), **changes}


def model_job(name: str, model: str, dataset_uri: str) -> dict[str, Any]:
    """CreateEvaluationJob kwargs of a programmatic job on a model Bedrock invokes."""
    config = {"bedrockModel": {"modelIdentifier": model}}
    return job_kwargs(name, dataset_uri, config, "QuestionAndAnswer", ["Builtin.Accuracy"], None)


def plain_dataset(lab: EvaluationLab) -> str:
    return lab.put("datasets/support.jsonl", [json.dumps(record) for record in PROMPTS])


def refusal(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return dict(caught.value.response["Error"])


def lines_of(lab: EvaluationLab, key: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lab.read(key).splitlines()]


# --------------------------------------------------------------------------------------------------
# CreateEvaluationJob: what the service refuses
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [DEPLOYMENT_ARN, CUSTOM_MODEL_ARN])
def test_a_deployment_or_custom_model_arn_is_no_model_an_evaluation_job_invokes(
    lab: EvaluationLab, model: str
) -> None:
    error = refusal(lab.bedrock.create_evaluation_job, **model_job("dev-x-custom", model, plain_dataset(lab)))

    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith(
        f"1 validation error detected: Value '{model}' at "
        "'inferenceConfig.models.1.member.bedrockModel.modelIdentifier' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: "
    )
    assert lab.bedrock.jobs == {}


@pytest.mark.parametrize("model", [PT_ARN, "amazon.nova-micro-v1:0", "us.amazon.nova-micro-v1:0"])
def test_a_provisioned_throughput_a_foundation_model_or_a_profile_is(lab: EvaluationLab, model: str) -> None:
    arn = lab.bedrock.create_evaluation_job(**model_job("dev-x-custom", model, plain_dataset(lab)))["jobArn"]

    assert lab.bedrock.get_evaluation_job(jobIdentifier=arn)["status"] == "InProgress"


def test_what_botocore_checks_itself_raises_before_the_service_sees_it(lab: EvaluationLab) -> None:
    kwargs = judge_job("dev-x-custom", byoi_dataset(lab))
    kwargs["evaluationConfig"]["automated"]["customMetricConfig"] = {
        "customMetrics": [
            {"customMetricDefinition": {"metricName": "tone", "instructions": "Rate the tone."}}
        ],
        "evaluatorModelConfig": {"bedrockEvaluatorModels": [{"modelIdentifier": JUDGE}]},
    }

    with pytest.raises(ParamValidationError, match=r'Unknown parameter .*"metricName"'):
        lab.bedrock.create_evaluation_job(**kwargs)


def test_every_pattern_the_service_checks_is_reported_at_once(lab: EvaluationLab) -> None:
    kwargs = judge_job(
        "Dev.X-custom", f"s3://{EVALUATION_BUCKET}/byoi/run=1/support.jsonl", clientRequestToken="token_1"
    )

    error = refusal(lab.bedrock.create_evaluation_job, **kwargs)

    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith("3 validation errors detected: ")
    for where in (
        "'jobName'",
        "'clientRequestToken'",
        "'evaluationConfig.automated.datasetMetricConfigs.1.member.dataset.datasetLocation.s3Uri'",
    ):
        assert where in error["Message"]


@pytest.mark.parametrize(
    ("task_type", "accepted"), [("General", True), ("Generation", True), ("Chat", False)]
)
def test_the_task_type_is_an_enum_value_or_general(
    lab: EvaluationLab, task_type: str, accepted: bool
) -> None:
    kwargs = judge_job("dev-x-custom", byoi_dataset(lab))
    kwargs["evaluationConfig"]["automated"]["datasetMetricConfigs"][0]["taskType"] = task_type

    if accepted:
        lab.bedrock.create_evaluation_job(**kwargs)
        assert len(lab.bedrock.jobs) == 1
    else:
        error = refusal(lab.bedrock.create_evaluation_job, **kwargs)
        assert "Member must satisfy enum value set" in error["Message"]


def test_an_automated_job_evaluates_one_model(lab: EvaluationLab) -> None:
    kwargs = model_job("dev-x-custom", PT_ARN, plain_dataset(lab))
    kwargs["inferenceConfig"]["models"].append(
        {"bedrockModel": {"modelIdentifier": "amazon.nova-micro-v1:0"}}
    )

    error = refusal(lab.bedrock.create_evaluation_job, **kwargs)

    assert error == {
        "Code": "ValidationException",
        "Message": "Automated evaluation jobs support a single model",
    }


def test_bring_your_own_inference_needs_a_judge(lab: EvaluationLab) -> None:
    kwargs = judge_job("dev-x-custom", byoi_dataset(lab))
    del kwargs["evaluationConfig"]["automated"]["evaluatorModelConfig"]

    error = refusal(lab.bedrock.create_evaluation_job, **kwargs)

    assert error["Code"] == "ValidationException"
    assert "model as judge" in error["Message"]


def test_the_same_request_token_returns_the_same_job(lab: EvaluationLab) -> None:
    kwargs = judge_job("dev-x-custom", byoi_dataset(lab), clientRequestToken="run-1")

    first = lab.bedrock.create_evaluation_job(**kwargs)["jobArn"]
    again = lab.bedrock.create_evaluation_job(**kwargs)["jobArn"]

    assert again == first
    assert list(lab.bedrock.jobs) == [first]


@pytest.mark.parametrize("code", ["ConflictException", "ValidationException"])
def test_a_name_in_use_under_another_token_is_refused(lab: EvaluationLab, code: str) -> None:
    lab.bedrock.name_taken_code = code
    dataset = byoi_dataset(lab)
    lab.bedrock.create_evaluation_job(**judge_job("dev-x-custom", dataset, clientRequestToken="run-1"))

    error = refusal(
        lab.bedrock.create_evaluation_job, **judge_job("dev-x-custom", dataset, clientRequestToken="run-2")
    )

    assert error == {"Code": code, "Message": "An evaluation job with the name dev-x-custom already exists"}
    assert len(lab.bedrock.jobs) == 1


def test_creation_checks_that_bedrock_can_write_the_output(lab: EvaluationLab) -> None:
    lab.bedrock.create_evaluation_job(**judge_job("dev-x-custom", byoi_dataset(lab)))

    assert f"results/dev-x-custom/{PERMISSION_CHECK}" in lab.object_keys()


# --------------------------------------------------------------------------------------------------
# Get, List, Stop
# --------------------------------------------------------------------------------------------------


def test_get_takes_the_arn_not_the_name(lab: EvaluationLab) -> None:
    arn = lab.bedrock.create_evaluation_job(**judge_job("dev-x-custom", byoi_dataset(lab)))["jobArn"]

    by_name = refusal(lab.bedrock.get_evaluation_job, jobIdentifier="dev-x-custom")
    unknown = refusal(lab.bedrock.get_evaluation_job, jobIdentifier=arn[:-12] + "000000000000")
    job = lab.bedrock.get_evaluation_job(jobIdentifier=arn)

    assert by_name["Code"] == "ValidationException"
    assert "at 'jobIdentifier'" in by_name["Message"]
    assert unknown["Code"] == "ResourceNotFoundException"
    assert (job["jobName"], job["jobType"], job["roleArn"]) == ("dev-x-custom", "Automated", ROLE)


def test_list_filters_by_name_and_status_newest_first_in_pages(lab: EvaluationLab) -> None:
    dataset = byoi_dataset(lab)
    arns = [
        lab.bedrock.create_evaluation_job(**judge_job(name, dataset))["jobArn"]
        for name in ("a-custom", "a-base", "b-custom", "c-custom")
    ]
    lab.bedrock.fail_evaluation("b-custom", "injected")
    lab.bedrock.hang("c-custom")
    lab.bedrock.settle()

    first = lab.bedrock.list_evaluation_jobs(nameContains="custom")
    second = lab.bedrock.list_evaluation_jobs(nameContains="custom", nextToken=first["nextToken"])
    failed = lab.bedrock.list_evaluation_jobs(statusEquals="Failed")
    oldest = lab.bedrock.list_evaluation_jobs(sortOrder="Ascending", maxResults=1)

    listed = [summary["jobName"] for page in (first, second) for summary in page["jobSummaries"]]
    assert listed == ["c-custom", "b-custom", "a-custom"]
    assert "nextToken" not in second
    assert [summary["jobArn"] for summary in failed["jobSummaries"]] == [arns[2]]
    assert oldest["jobSummaries"][0]["jobName"] == "a-custom"
    summary = first["jobSummaries"][0]
    assert summary["evaluationTaskTypes"] == ["General"]
    assert summary["evaluatorModelIdentifiers"] == [JUDGE]
    assert summary["inferenceConfigSummary"]["modelConfigSummary"] == {
        "precomputedInferenceSourceIdentifiers": ["custom"]
    }


def test_stop_ends_a_running_job_without_results_and_refuses_an_ended_one(lab: EvaluationLab) -> None:
    dataset = byoi_dataset(lab)
    running = lab.bedrock.create_evaluation_job(**judge_job("dev-x-custom", dataset))["jobArn"]
    ended = lab.bedrock.create_evaluation_job(**judge_job("dev-x-base", dataset))["jobArn"]
    lab.bedrock.hang("dev-x-custom")
    lab.bedrock.settle()

    lab.bedrock.stop_evaluation_job(jobIdentifier=running)
    stopping = lab.bedrock.get_evaluation_job(jobIdentifier=running)["status"]
    lab.bedrock.settle()
    conflict = refusal(lab.bedrock.stop_evaluation_job, jobIdentifier=ended)

    assert stopping == "Stopping"
    assert lab.bedrock.get_evaluation_job(jobIdentifier=running)["status"] == "Stopped"
    assert not [
        key for key in lab.object_keys() if key.startswith("results/dev-x-custom/") and "_output" in key
    ]
    assert conflict["Code"] == "ConflictException"


# --------------------------------------------------------------------------------------------------
# settle(): results, failures, hangs
# --------------------------------------------------------------------------------------------------


def test_a_completed_job_leaves_one_result_line_per_record_in_the_documented_layout(
    lab: EvaluationLab,
) -> None:
    arn = lab.bedrock.create_evaluation_job(**judge_job("dev-x-custom", byoi_dataset(lab)))["jobArn"]
    lab.bedrock.set_scores("custom", {"Builtin.Correctness": 1.0})

    lab.bedrock.settle()

    folder = (
        f"results/dev-x-custom/{arn.rsplit('/', 1)[-1]}/models/custom/taskTypes/General/datasets/support/"
    )
    outputs = [key for key in lab.object_keys() if key.endswith("_output.jsonl")]
    assert len(outputs) == 2  # three records, two a file
    assert all(
        key.startswith(folder) and len(key) == len(folder) + 32 + len("_output.jsonl") for key in outputs
    )
    rows = [row for key in outputs for row in lines_of(lab, key)]
    assert sorted(row["inputRecord"]["prompt"] for row in rows) == sorted(
        record["prompt"] for record in PROMPTS
    )
    row = next(row for row in rows if row["inputRecord"]["prompt"] == PROMPTS[0]["prompt"])
    assert row["inputRecord"] == PROMPTS[0]
    assert row["modelResponses"] == [{"modelIdentifier": "custom", "response": "answer 0"}]
    assert [
        (score["metricName"], score["result"]) for score in row["automatedEvaluationResult"]["scores"]
    ] == [
        ("Builtin.Correctness", 1.0),
        ("Builtin.Helpfulness", DEFAULT_SCORE),
    ]
    assert row["automatedEvaluationResult"]["scores"][0]["evaluatorDetails"][0]["modelIdentifier"] == JUDGE
    assert lab.bedrock.get_evaluation_job(jobIdentifier=arn)["status"] == "Completed"


def test_a_job_on_a_model_bedrock_invokes_has_its_responses_and_a_folder_named_after_it(
    lab: EvaluationLab,
) -> None:
    lab.bedrock.create_evaluation_job(**model_job("dev-x-custom", PT_ARN, plain_dataset(lab)))
    lab.bedrock.set_scores(PT_ARN, {"Builtin.Accuracy": None})

    lab.bedrock.settle()

    outputs = [key for key in lab.object_keys() if key.endswith("_output.jsonl")]
    folder = f"/models/arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model-abcdef123456/taskTypes/QuestionAndAnswer/"
    assert outputs and all(folder in key for key in outputs)
    rows = [row for key in outputs for row in lines_of(lab, key)]
    assert {row["modelResponses"][0]["response"] for row in rows} == {
        fake_answer(PT_ARN, str(record["prompt"])) for record in PROMPTS
    }
    assert {score["result"] for row in rows for score in row["automatedEvaluationResult"]["scores"]} == {None}
    assert all("evaluatorDetails" not in row["automatedEvaluationResult"]["scores"][0] for row in rows)


def test_byoi_responses_labelled_otherwise_fail_the_job(lab: EvaluationLab) -> None:
    arn = lab.bedrock.create_evaluation_job(**judge_job("dev-x-custom", byoi_dataset(lab, label="other")))[
        "jobArn"
    ]

    lab.bedrock.settle()

    job = lab.bedrock.get_evaluation_job(jobIdentifier=arn)
    assert job["status"] == "Failed"
    assert job["failureMessages"] == [
        f"Record 1 of s3://{EVALUATION_BUCKET}/byoi/support.jsonl: each prompt needs exactly one "
        "modelResponses entry whose modelIdentifier is custom"
    ]


def test_a_dataset_that_is_not_there_fails_the_job(lab: EvaluationLab) -> None:
    missing = f"s3://{EVALUATION_BUCKET}/byoi/missing.jsonl"
    arn = lab.bedrock.create_evaluation_job(**judge_job("dev-x-custom", missing))["jobArn"]

    lab.bedrock.settle()

    job = lab.bedrock.get_evaluation_job(jobIdentifier=arn)
    assert job["status"] == "Failed"
    assert job["failureMessages"][0].startswith(f"The dataset {missing} could not be read")


def test_an_injected_failure_by_model_ends_the_job_failed_and_a_hang_keeps_one_running(
    lab: EvaluationLab,
) -> None:
    dataset = byoi_dataset(lab)
    failing = lab.bedrock.create_evaluation_job(**judge_job("dev-x-custom", dataset))["jobArn"]
    hanging = lab.bedrock.create_evaluation_job(**model_job("dev-x-base", PT_ARN, plain_dataset(lab)))[
        "jobArn"
    ]
    lab.bedrock.fail_evaluation("custom", "The judge model is not available in this Region")
    lab.bedrock.hang(PT_ARN)

    lab.bedrock.settle()
    lab.bedrock.settle()

    failed = lab.bedrock.get_evaluation_job(jobIdentifier=failing)
    assert (failed["status"], failed["failureMessages"]) == (
        "Failed",
        ["The judge model is not available in this Region"],
    )
    assert lab.bedrock.get_evaluation_job(jobIdentifier=hanging)["status"] == "InProgress"
    assert not [key for key in lab.object_keys() if key.endswith("_output.jsonl")]


def test_settle_also_lets_time_pass_for_the_serving_fake_underneath(lab: EvaluationLab) -> None:
    arn = lab.deployment(active=False)

    lab.bedrock.settle()

    assert lab.serving.deployments[arn]["status"] == "Active"


# --------------------------------------------------------------------------------------------------
# Converse
# --------------------------------------------------------------------------------------------------


def ask(
    lab: EvaluationLab, model_id: str, prompt: str = "Where is my order?", **extra: Any
) -> dict[str, Any]:
    response: dict[str, Any] = lab.runtime.converse(
        modelId=model_id, messages=[{"role": "user", "content": [{"text": prompt}]}], **extra
    )
    return response


def test_an_active_deployment_answers_with_its_usage(lab: EvaluationLab) -> None:
    arn = lab.deployment()

    response = ask(lab, arn, inferenceConfig={"maxTokens": 100, "temperature": 0.0})

    assert response["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": fake_answer(arn, "Where is my order?")}],
    }
    assert response["stopReason"] == "end_turn"
    assert response["usage"] == {"inputTokens": 4, "outputTokens": 6, "totalTokens": 10}


def test_max_tokens_cuts_the_answer(lab: EvaluationLab) -> None:
    response = ask(lab, "amazon.nova-micro-v1:0", inferenceConfig={"maxTokens": 2})

    assert response["output"]["message"]["content"] == [{"text": "amazon.nova-micro-v1:0 answers:"}]
    assert (response["stopReason"], response["usage"]["outputTokens"]) == ("max_tokens", 2)


@pytest.mark.parametrize(
    ("model_id", "code"),
    [
        ("deployment-being-created", "ModelNotReadyException"),
        (DEPLOYMENT_ARN, "ResourceNotFoundException"),
        (PT_ARN, "ResourceNotFoundException"),
        ("amazon.titan-nothing-v9:0", "ValidationException"),
        (CUSTOM_MODEL_ARN, "ValidationException"),
    ],
)
def test_a_model_it_cannot_invoke_is_refused_as_aws_refuses_it(
    lab: EvaluationLab, model_id: str, code: str
) -> None:
    if model_id == "deployment-being-created":
        model_id = lab.deployment(active=False)

    error = refusal(ask, lab=lab, model_id=model_id)

    assert error["Code"] == code


@pytest.mark.parametrize(
    "model_id",
    [
        f"arn:aws:bedrock:{REGION}::foundation-model/amazon.nova-lite-v1:0",
        f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/us.amazon.nova-pro-v1:0",
        "meta.llama3-3-70b-instruct-v1:0",
    ],
)
def test_known_foundation_models_and_profiles_answer(lab: EvaluationLab, model_id: str) -> None:
    assert ask(lab, model_id)["stopReason"] == "end_turn"


def test_a_provisioned_throughput_in_service_answers(lab: EvaluationLab) -> None:
    arn = lab.serving.create_provisioned_model_throughput(
        provisionedModelName="dev-x-pt", modelId=CUSTOM_MODEL_ARN, modelUnits=1
    )["provisionedModelArn"]
    not_yet = refusal(ask, lab=lab, model_id=arn)
    lab.serving.settle()

    assert not_yet["Code"] == "ModelNotReadyException"
    assert ask(lab, arn)["output"]["message"]["content"][0]["text"] == fake_answer(arn, "Where is my order?")


def test_the_service_checks_ranges_and_the_conversation(lab: EvaluationLab) -> None:
    too_hot = refusal(ask, lab=lab, model_id="amazon.nova-micro-v1:0", inferenceConfig={"temperature": 1.5})
    assistant_first = refusal(
        lab.runtime.converse,
        modelId="amazon.nova-micro-v1:0",
        messages=[{"role": "assistant", "content": [{"text": "Hello"}]}],
    )

    assert too_hot["Code"] == "ValidationException"
    assert "at 'inferenceConfig.temperature'" in too_hot["Message"]
    assert assistant_first == {
        "Code": "ValidationException",
        "Message": "A conversation must start and end with a user message.",
    }
    with pytest.raises(ParamValidationError):
        lab.runtime.converse(modelId="amazon.nova-micro-v1:0", messages=[{"role": "user", "content": "Hi"}])


def test_faults_once_or_for_every_prompt_that_contains_a_text(lab: EvaluationLab) -> None:
    lab.runtime.fail_next("converse", "ThrottlingException", "Too many requests")
    lab.runtime.fail_prompt("refund", "ValidationException", "Input is too long")

    throttled = refusal(ask, lab=lab, model_id="amazon.nova-micro-v1:0")
    answered = ask(lab, "amazon.nova-micro-v1:0")
    refused = [refusal(ask, lab=lab, model_id="amazon.nova-micro-v1:0", prompt="a refund?") for _ in range(2)]

    assert throttled == {"Code": "ThrottlingException", "Message": "Too many requests"}
    assert answered["stopReason"] == "end_turn"
    assert refused == [{"Code": "ValidationException", "Message": "Input is too long"}] * 2
    assert len(lab.runtime.calls_of("converse")) == 4
