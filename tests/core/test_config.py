"""cdk.json context -> typed configuration: shapes, defaults, overrides, and every error with its path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from finetune.core.config import Budget, ConfigError, ExpectedTraffic, parse_config
from tests.conftest import DATA_ROOT, sample_context


def context_with(data_root: Path) -> dict[str, Any]:
    (data_root / "assistant").mkdir(parents=True, exist_ok=True)
    (data_root / "assistant" / "train.jsonl").write_text('{"prompt": "p", "completion": "c"}\n')
    (data_root / "assistant" / "valid.jsonl").write_text('{"prompt": "p", "completion": "c"}\n')
    return {
        "environments": {
            "dev": {"region": "us-west-2", "removal_policy": "destroy"},
            "prod": {"region": "us-east-1", "account": "123456789012", "notification_emails": ["a@b.org"]},
        },
        "fine_tunings": {
            "assistant": {
                "base_model": "meta.llama3-1-8b-instruct-v1:0:128k",
                "training_data": "assistant/train.jsonl",
                "validation_data": "assistant/valid.jsonl",
                "hyperparameters": {"epochCount": 2, "learningRate": 0.0001},
                "serving": {"mode": "provisioned", "model_units": 2},
            }
        },
    }


def errors_of(context: dict[str, Any], data_root: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(context, data_root)
    return {error.path: error.message for error in raised.value.errors}


def test_sample_configuration_parses_into_one_config_per_environment_and_fine_tuning() -> None:
    config = parse_config(sample_context(), DATA_ROOT)
    assert [env.name for env in config.environments] == ["dev", "prod"]
    assert sorted((ft.environment.name, ft.name) for ft in config.fine_tunings) == [
        ("dev", "sql-generator"),
        ("dev", "support-assistant"),
        ("prod", "sql-generator"),
        ("prod", "support-assistant"),
    ]


def test_defaults_and_resolved_fields(tmp_path: Path) -> None:
    config = parse_config(context_with(tmp_path), tmp_path)
    dev = config.get("dev", "assistant")
    prod = config.get("prod", "assistant")
    assert dev.region == "us-west-2" and prod.region == "us-east-1"  # the environment's region
    assert dev.customization_type == "FINE_TUNING"
    assert dev.environment.stop_jobs_on_destroy is True  # destroy environments stop jobs by default
    assert prod.environment.removal_policy == "retain"  # the safe default
    assert prod.environment.stop_jobs_on_destroy is False
    assert prod.environment.allow_commitment is False
    assert prod.environment.notification_emails == ("a@b.org",)
    assert dev.serving.model_units == 2 and dev.serving.commitment == "none"
    assert dev.serving.idle_alarm_hours == 24
    assert dev.training_data.path == (tmp_path / "assistant" / "train.jsonl").resolve()
    assert dev.tags() == {
        "finetune:environment": "dev",
        "finetune:fine-tuning": "assistant",
        "finetune:stack": "dev-assistant",
    }


def test_override_merges_maps_and_replaces_scalars_for_its_environment_only(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["environments"]["dev"]["overrides"] = {
        "assistant": {
            "hyperparameters": {"epochCount": 1},
            "serving": {"mode": "none"},
            "region": "us-east-1",
        }
    }
    config = parse_config(context, tmp_path)
    dev, prod = config.get("dev", "assistant"), config.get("prod", "assistant")
    assert dev.hyperparameters == {"epochCount": 1, "learningRate": 0.0001}
    assert dev.serving.mode == "none" and dev.serving.model_units == 2
    assert dev.region == "us-east-1"
    assert prod.hyperparameters == {"epochCount": 2, "learningRate": 0.0001}
    assert (
        dev.path_of("hyperparameters.epochCount")
        == "environments.dev.overrides.assistant.hyperparameters.epochCount"
    )
    assert (
        dev.path_of("hyperparameters.learningRate") == "fine_tunings.assistant.hyperparameters.learningRate"
    )
    assert prod.path_of("serving.mode") == "fine_tunings.assistant.serving.mode"


def test_missing_required_fields_are_reported_with_their_paths(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    del context["fine_tunings"]["assistant"]["base_model"]
    del context["environments"]["dev"]["region"]
    errors = errors_of(context, tmp_path)
    assert "required" in errors["fine_tunings.assistant.base_model"]
    assert "required" in errors["environments.dev.region"]


def test_missing_sections_are_reported() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({}, DATA_ROOT)
    assert [error.path for error in raised.value.errors] == ["environments", "fine_tunings"]


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (
            lambda c: c["fine_tunings"]["assistant"].update(base_model=42),
            "fine_tunings.assistant.base_model",
            "string",
        ),
        (
            lambda c: c["fine_tunings"]["assistant"]["hyperparameters"].update(epochCount=[2]),
            "fine_tunings.assistant.hyperparameters.epochCount",
            "expected a number",
        ),
        (
            lambda c: c["fine_tunings"]["assistant"]["hyperparameters"].update(epochCount=True),
            "fine_tunings.assistant.hyperparameters.epochCount",
            "expected a number",
        ),
        (
            lambda c: c["fine_tunings"]["assistant"]["serving"].update(model_units=0),
            "fine_tunings.assistant.serving.model_units",
            ">= 1",
        ),
        (
            lambda c: c["fine_tunings"]["assistant"]["serving"].update(mode="always"),
            "fine_tunings.assistant.serving.mode",
            "'provisioned' | 'on_demand' | 'none'",
        ),
        (
            lambda c: c["fine_tunings"]["assistant"]["serving"].update(idle_alarm_hours=0),
            "fine_tunings.assistant.serving.idle_alarm_hours",
            "from 1 to 168",
        ),
        (
            lambda c: c["fine_tunings"]["assistant"]["serving"].update(commitment="OneYear"),
            "fine_tunings.assistant.serving.commitment",
            "'none' | 'OneMonth' | 'SixMonths'",
        ),
        (
            lambda c: c["fine_tunings"]["assistant"].update(customization_type="LORA"),
            "fine_tunings.assistant.customization_type",
            "FINE_TUNING",
        ),
        (
            lambda c: c["environments"]["dev"].update(removal_policy="keep"),
            "environments.dev.removal_policy",
            "retain",
        ),
        (lambda c: c["environments"]["dev"].update(region="mars-1"), "environments.dev.region", "AWS region"),
        (
            lambda c: c["environments"]["prod"].update(account="12345"),
            "environments.prod.account",
            "12-digit",
        ),
        (
            lambda c: c["environments"]["prod"].update(notification_emails=["not-an-address"]),
            "environments.prod.notification_emails[0]",
            "e-mail",
        ),
        (
            lambda c: c["environments"]["dev"].update(allow_commitment="yes"),
            "environments.dev.allow_commitment",
            "true or false",
        ),
        (
            lambda c: c["fine_tunings"]["assistant"].update(serving="provisioned"),
            "fine_tunings.assistant.serving",
            "object",
        ),
    ],
)
def test_wrong_types_and_values(tmp_path: Path, mutate: Any, path: str, words: str) -> None:
    context = context_with(tmp_path)
    mutate(context)
    errors = errors_of(context, tmp_path)
    assert path in errors, errors
    assert words in errors[path]


def test_unknown_keys_are_rejected_with_a_suggestion_and_the_accepted_keys(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["fine_tunings"]["assistant"]["hyperparameter"] = {}
    context["fine_tunings"]["assistant"]["serving"]["units"] = 1
    context["environments"]["dev"]["removal"] = "destroy"
    errors = errors_of(context, tmp_path)
    assert "did you mean 'hyperparameters'" in errors["fine_tunings.assistant.hyperparameter"]
    assert (
        "accepted: mode, model_units, commitment, idle_alarm_hours"
        in errors["fine_tunings.assistant.serving.units"]
    )
    assert "did you mean 'removal_policy'" in errors["environments.dev.removal"]


def test_missing_and_escaping_data_files(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["fine_tunings"]["assistant"]["training_data"] = "assistant/missing.jsonl"
    context["fine_tunings"]["assistant"]["validation_data"] = "../outside.jsonl"
    errors = errors_of(context, tmp_path)
    assert (
        errors["fine_tunings.assistant.training_data"]
        == f"file not found: {tmp_path.name}/assistant/missing.jsonl"
    )
    assert "must be a path inside" in errors["fine_tunings.assistant.validation_data"]


def test_errors_in_an_override_name_the_override_path(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["environments"]["prod"]["overrides"] = {
        "assistant": {"serving": {"mode": "sometimes"}, "training_data": "nope.jsonl", "colour": "red"},
        "unknown-ft": {},
    }
    errors = errors_of(context, tmp_path)
    assert "accepted" in errors["environments.prod.overrides.assistant.serving.mode"]
    assert "file not found" in errors["environments.prod.overrides.assistant.training_data"]
    assert "unknown key" in errors["environments.prod.overrides.assistant.colour"]
    assert "no fine-tuning named 'unknown-ft'" in errors["environments.prod.overrides.unknown-ft"]
    # The base fine-tuning is fine: nothing is reported against it.
    assert not [path for path in errors if path.startswith("fine_tunings.")]


def test_all_errors_are_reported_at_once_and_once_each(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    broken = copy.deepcopy(context)
    broken["fine_tunings"]["assistant"]["base_model"] = ""
    broken["fine_tunings"]["assistant"]["serving"]["model_units"] = -1
    broken["environments"]["dev"]["region"] = 7
    with pytest.raises(ConfigError) as raised:
        parse_config(broken, tmp_path)
    paths = [error.path for error in raised.value.errors]
    # The fine-tuning is parsed for both environments, its problems reported once.
    assert sorted(paths) == sorted(
        {
            "fine_tunings.assistant.base_model",
            "fine_tunings.assistant.serving.model_units",
            "environments.dev.region",
        }
    )
    assert len(paths) == len(set(paths))
    assert str(raised.value).count("\n") == 2


@pytest.mark.parametrize("name", ["Dev", "1dev", "dev_1", "a" * 17, "dev--1", "dev-"])
def test_environment_names_must_fit_stack_and_job_names(tmp_path: Path, name: str) -> None:
    context = context_with(tmp_path)
    context["environments"][name] = context["environments"].pop("dev")
    errors = errors_of(context, tmp_path)
    assert "lowercase letters" in errors[f"environments.{name}"]


def test_pricing_overrides_are_checked_for_shape(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["environments"]["dev"]["pricing"] = {
        "meta.llama3-1-8b-instruct-v1:0:128k": {"training_per_1k_tokens": -1, "per_token": 1},
    }
    errors = errors_of(context, tmp_path)
    base = "environments.dev.pricing.meta.llama3-1-8b-instruct-v1:0:128k"
    assert ">= 0" in errors[f"{base}.training_per_1k_tokens"]
    assert "unknown key" in errors[f"{base}.per_token"]
    context["environments"]["dev"]["pricing"] = {
        "meta.llama3-1-8b-instruct-v1:0:128k": {"storage_per_month": 2}
    }
    config = parse_config(context, tmp_path)
    assert config.get("dev", "assistant").environment.pricing == {
        "meta.llama3-1-8b-instruct-v1:0:128k": {"storage_per_month": 2.0}
    }


def test_error_report_has_a_heading_and_one_indented_line_per_problem(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["environments"]["dev"]["region"] = "nowhere"
    context["fine_tunings"]["assistant"]["serving"]["mode"] = "always"
    with pytest.raises(ConfigError) as raised:
        parse_config(context, tmp_path)
    lines = raised.value.report().splitlines()
    assert lines[0] == "cdk.json: invalid configuration (2 problems):"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  environments.dev.region",
        "  fine_tunings.assistant.serving.mode",
    ]


def test_names_that_make_the_same_stack_are_rejected(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["environments"] = {"dev": {"region": "us-west-2"}, "dev-support": {"region": "us-west-2"}}
    context["fine_tunings"]["support-assistant"] = context["fine_tunings"].pop("assistant")
    context["fine_tunings"]["assistant"] = copy.deepcopy(context["fine_tunings"]["support-assistant"])

    errors = errors_of(context, tmp_path)

    assert list(errors) == ["environments.dev-support"]
    message = errors["environments.dev-support"]
    assert (
        "'dev-support-assistant'" in message
        and "environment 'dev' with fine-tuning 'support-assistant'" in message
    )


def test_superseded_jobs_stop_by_default_only_where_destroy_is_the_policy(tmp_path: Path) -> None:
    config = parse_config(context_with(tmp_path), tmp_path)
    assert config.get("dev", "assistant").environment.stop_superseded_jobs is True
    assert config.get("prod", "assistant").environment.stop_superseded_jobs is False
    context = context_with(tmp_path)
    context["environments"]["prod"]["stop_superseded_jobs"] = True
    context["environments"]["dev"]["stop_superseded_jobs"] = "yes"
    assert errors_of(context, tmp_path) == {
        "environments.dev.stop_superseded_jobs": "expected true or false, got str 'yes'"
    }


def test_a_data_path_written_from_the_project_root_is_the_same_file(tmp_path: Path) -> None:
    data_root = tmp_path / "training_data"
    context = context_with(data_root)
    context["fine_tunings"]["assistant"]["training_data"] = "training_data/assistant/train.jsonl"
    config = parse_config(context, data_root)
    training = config.get("dev", "assistant").training_data
    assert training.relative_path == "assistant/train.jsonl"
    assert training.path == (data_root / "assistant" / "train.jsonl").resolve()
    context["fine_tunings"]["assistant"]["training_data"] = "training_data/assistant/missing.jsonl"
    assert errors_of(context, data_root) == {
        "fine_tunings.assistant.training_data": "file not found: training_data/assistant/missing.jsonl"
    }


def test_a_misspelled_top_level_key_is_named_and_cdk_keys_are_left_alone(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["fine_tuning"] = {}
    context["@aws-cdk/core:newStyleStackSynthesis"] = True
    context["availability-zones:account=123456789012:region=us-west-2"] = ["us-west-2a"]
    errors = errors_of(context, tmp_path)
    assert list(errors) == ["fine_tuning"]
    assert "did you mean 'fine_tunings'" in errors["fine_tuning"]


def test_training_data_is_not_its_own_validation_set(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["fine_tunings"]["assistant"]["validation_data"] = "assistant/train.jsonl"
    assert (
        "is the training file itself"
        in errors_of(context, tmp_path)["fine_tunings.assistant.validation_data"]
    )


def test_budgets_are_read_and_checked_for_shape(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["environments"]["dev"]["budget"] = {"training_usd": 25, "total_usd_per_month": 100.5}
    dev = parse_config(context, tmp_path).get("dev", "assistant").environment
    assert dev.budget == Budget(training_usd=25.0, total_usd_per_month=100.5)
    assert dev.budget.limits == {"training_usd": 25.0, "total_usd_per_month": 100.5}
    context["environments"]["dev"]["budget"] = {
        "training_usd": -1,
        "serving_usd_per_month": True,
        "total_usd_monthly": 5,
    }
    errors = errors_of(context, tmp_path)
    assert errors["environments.dev.budget.training_usd"] == "expected an amount in USD >= 0, got -1"
    assert (
        errors["environments.dev.budget.serving_usd_per_month"] == "expected an amount in USD >= 0, got True"
    )
    assert errors["environments.dev.budget.total_usd_monthly"].startswith(
        "unknown key (did you mean 'total_usd_per_month'?)"
    )


def test_expected_traffic_is_read_and_checked_with_override_paths(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["fine_tunings"]["assistant"]["serving"]["expected_tokens_per_month"] = {
        "input": 1000,
        "output": 50,
    }
    context["environments"]["prod"]["overrides"] = {
        "assistant": {"serving": {"expected_tokens_per_month": {"input": 2000000}}}
    }
    config = parse_config(context, tmp_path)
    assert config.get("dev", "assistant").expected_traffic == ExpectedTraffic(1000, 50)
    assert config.get("prod", "assistant").expected_traffic == ExpectedTraffic(2_000_000, 0)
    context["environments"]["prod"]["overrides"] = {
        "assistant": {"serving": {"expected_tokens_per_month": {"input": 1.5, "outptu": 3}}}
    }
    context["environments"]["dev"]["overrides"] = {
        "assistant": {"serving": {"expected_tokens_per_month": {"input": 0, "output": 0}}}
    }
    errors = errors_of(context, tmp_path)
    path = "environments.prod.overrides.assistant.serving.expected_tokens_per_month"
    assert errors[f"{path}.input"] == "expected a whole number of tokens >= 0, got 1.5"
    assert errors[f"{path}.outptu"].startswith("unknown key (did you mean 'output'?)")
    assert errors["environments.dev.overrides.assistant.serving.expected_tokens_per_month"] == (
        'give "input" and/or "output" tokens per 30 days (both are 0)'
    )


# Evaluation and candidates -----------------------------------------------------------------------


def with_evaluation(data_root: Path, **evaluation: Any) -> dict[str, Any]:
    context = context_with(data_root)
    (data_root / "assistant" / "eval.jsonl").write_text('{"prompt": "p", "referenceResponse": "r"}\n')
    context["fine_tunings"]["assistant"]["evaluation"] = {
        "dataset": "assistant/eval.jsonl",
        "judge_model": "amazon.nova-pro-v1:0",
        "metrics": ["Builtin.Correctness"],
        "gate": {"minimums": {"Builtin.Correctness": 0.7}},
        **evaluation,
    }
    return context


def test_an_evaluation_and_candidates_parse_into_trials(tmp_path: Path) -> None:
    context = with_evaluation(tmp_path, gate={"minimums": {"Builtin.Correctness": 0.7}, "beat_base": True})
    context["fine_tunings"]["assistant"]["candidates"] = {
        "slow": {"hyperparameters": {"learningRate": 0.00005}},
        "big": {"base_model": "meta.llama3-1-70b-instruct-v1:0:128k"},
    }
    ft = parse_config(context, tmp_path).get("dev", "assistant")
    assert ft.evaluation is not None and ft.evaluation_data is not None
    assert ft.evaluation.judge_model == "amazon.nova-pro-v1:0"
    assert ft.evaluation.gate.minimums == {"Builtin.Correctness": 0.7} and ft.evaluation.gate.beat_base
    assert (ft.evaluation.max_hours, ft.evaluation.max_tokens, ft.evaluation.temperature) == (8, 512, 0.0)
    assert ft.evaluation_data.path == (tmp_path / "assistant" / "eval.jsonl").resolve()
    main, slow, big = ft.trials
    assert (main.trial_name, slow.trial_name, big.trial_name) == ("main", "slow", "big")
    # Same model: the candidate's hyperparameters merge onto the fine-tuning's.
    assert slow.base_model == main.base_model
    assert slow.hyperparameters == {"epochCount": 2, "learningRate": 0.00005}
    # Another model: its own catalog defaults, not hyperparameters meant for another model.
    assert big.base_model == "meta.llama3-1-70b-instruct-v1:0:128k" and big.hyperparameters == {}
    assert big.path_of("base_model") == "fine_tunings.assistant.candidates.big.base_model"
    assert big.path_of("training_data") == "fine_tunings.assistant.training_data"


@pytest.mark.parametrize(
    ("evaluation", "path", "says"),
    [
        ({"metrics": ["Builtin.Correctnes"]}, "evaluation.metrics[0]", "accepted with a judge_model"),
        ({"metrics": "Builtin.Correctness"}, "evaluation.metrics", "expected a list of metric names"),
        (
            {"judge_model": "meta.llama3-1-8b-instruct-v1:0"},
            "evaluation.judge_model",
            "not an evaluator model",
        ),
        ({"dataset": "assistant/missing.jsonl"}, "evaluation.dataset", "file not found: "),
        ({"task_type": "Summarization"}, "evaluation.task_type", "leave task_type out"),
        ({"gate": {"minimum": {}}}, "evaluation.gate.minimum", "unknown key (did you mean 'minimums'?)"),
        ({"gate": {"beat_base": "yes"}}, "evaluation.gate.beat_base", "expected true or false"),
        (
            {"gate": {"minimums": {"Builtin.Correctness": "high"}}},
            "evaluation.gate.minimums.Builtin.Correctness",
            "a number from 0 to 1",
        ),
        ({"max_hours": 1.5}, "evaluation.max_hours", "expected a whole number"),
        ({"judge": "x"}, "evaluation.judge", "unknown key"),
    ],
)
def test_every_evaluation_error_names_its_field(
    tmp_path: Path, evaluation: dict[str, Any], path: str, says: str
) -> None:
    errors = errors_of(with_evaluation(tmp_path, **evaluation), tmp_path)
    full = f"fine_tunings.assistant.{path}"
    assert full in errors, errors
    assert says in errors[full]


def test_a_programmatic_evaluation_needs_no_judge(tmp_path: Path) -> None:
    context = with_evaluation(
        tmp_path,
        judge_model=None,
        task_type="QuestionAndAnswer",
        metrics=["Builtin.Accuracy"],
        gate={"minimums": {"Builtin.Accuracy": 0.4}},
    )
    del context["fine_tunings"]["assistant"]["evaluation"]["judge_model"]
    evaluation = parse_config(context, tmp_path).get("dev", "assistant").evaluation
    assert (
        evaluation is not None and evaluation.task_type == "QuestionAndAnswer" and not evaluation.uses_judge
    )


@pytest.mark.parametrize(
    ("candidates", "path", "says"),
    [
        ({"main": {"hyperparameters": {"epochCount": 1}}}, "candidates.main", "not 'main'"),
        ({"Big": {"hyperparameters": {"epochCount": 1}}}, "candidates.Big", "lowercase"),
        ({"empty": {}}, "candidates.empty", "give a base_model and/or hyperparameters"),
        ({"x": {"model": "m"}}, "candidates.x.model", "unknown key"),
        (
            {"x": {"hyperparameters": {"epochCount": None}}},
            "candidates.x.hyperparameters.epochCount",
            "expected a number",
        ),
    ],
)
def test_every_candidate_error_names_its_field(
    tmp_path: Path, candidates: dict[str, Any], path: str, says: str
) -> None:
    context = with_evaluation(tmp_path)
    context["fine_tunings"]["assistant"]["candidates"] = candidates
    errors = errors_of(context, tmp_path)
    full = f"fine_tunings.assistant.{path}"
    assert full in errors, errors
    assert says in errors[full]


def test_candidates_without_an_evaluation_are_rejected(tmp_path: Path) -> None:
    context = context_with(tmp_path)
    context["fine_tunings"]["assistant"]["candidates"] = {"slow": {"hyperparameters": {"epochCount": 1}}}
    errors = errors_of(context, tmp_path)
    assert errors["fine_tunings.assistant.candidates"].startswith("candidates need an evaluation")
