"""finetune.core.evaluation: metric rules, the prompt dataset, the gate's verdicts and the ranking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune.core.evaluation import (
    JUDGE_METRICS,
    MAX_PROMPTS,
    EvaluationSettings,
    Gate,
    Scores,
    TrialOutcome,
    Verdict,
    aggregate,
    check_dataset,
    is_judge_model,
    judge,
    rank,
    settings_problems,
    winner,
)

JUDGE = "amazon.nova-pro-v1:0"


def judged(*metrics: str, gate: Gate | None = None, **options: Any) -> EvaluationSettings:
    return EvaluationSettings(
        dataset="x/eval.jsonl",
        metrics=metrics or ("Builtin.Correctness",),
        gate=gate or Gate(minimums={"Builtin.Correctness": 0.7}),
        **{"judge_model": JUDGE, **options},
    )


def scores(prompts: int = 10, **values: float | None) -> Scores:
    return Scores(values={f"Builtin.{name}": value for name, value in values.items()}, prompts=prompts)


# Settings ----------------------------------------------------------------------------------------


def test_a_judged_and_a_programmatic_evaluation_within_the_rules_have_no_problems() -> None:
    assert settings_problems(judged("Builtin.Correctness", "Builtin.Harmfulness")) == []
    programmatic = EvaluationSettings(
        dataset="x.jsonl",
        metrics=("Builtin.Accuracy", "Builtin.Toxicity"),
        gate=Gate(minimums={"Builtin.Accuracy": 0.5}, maximums={"Builtin.Toxicity": 0.1}),
        task_type="QuestionAndAnswer",
    )
    assert settings_problems(programmatic) == []


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        (judged("Builtin.Correctnes"), "metrics[0]", "accepted with a judge_model: Builtin.Correctness"),
        (judged("Builtin.Accuracy"), "metrics[0]", "a programmatic metric: leave out judge_model"),
        (
            EvaluationSettings("x", ("Builtin.Correctness",), Gate(beat_base=True)),
            "metrics[0]",
            "a judge metric: add a judge_model",
        ),
        (
            EvaluationSettings("x", ("Builtin.Toxicity",), Gate(beat_base=True), task_type="Classification"),
            "metrics[0]",
            "accepted for task_type Classification without a judge_model: Builtin.Accuracy, Builtin.Robustness",
        ),
        (
            EvaluationSettings("x", ("Builtin.Accuracy",), Gate(beat_base=True), task_type="General"),
            "task_type",
            "accepted: Generation, Summarization, QuestionAndAnswer, Classification",
        ),
        (
            judged(judge_model="openai.gpt-oss-20b-1:0"),
            "judge_model",
            "not an evaluator model Bedrock offers",
        ),
        (judged(gate=Gate()), "gate", "a gate needs minimums, maximums and/or beat_base"),
        (
            judged(gate=Gate(minimums={"Builtin.Completeness": 0.5})),
            "gate.minimums.Builtin.Completeness",
            "not among the evaluation's metrics",
        ),
        (
            judged("Builtin.Harmfulness", gate=Gate(minimums={"Builtin.Harmfulness": 0.1})),
            "gate.minimums.Builtin.Harmfulness",
            "lower is better, so it takes a limit in gate.maximums",
        ),
        (
            judged(gate=Gate(maximums={"Builtin.Correctness": 0.9})),
            "gate.maximums.Builtin.Correctness",
            "higher is better, so it takes a limit in gate.minimums",
        ),
        (
            judged(gate=Gate(minimums={"Builtin.Correctness": 7})),
            "gate.minimums.Builtin.Correctness",
            "from 0 to 1",
        ),
        (judged("Builtin.Correctness", "Builtin.Correctness"), "metrics", "names a metric twice"),
        (judged(*JUDGE_METRICS), "metrics", "give 1 to 10 metric names, got 11"),
        (judged(max_hours=0), "max_hours", "from 1 to 72"),
        (judged(max_tokens=100_000), "max_tokens", "from 1 to 8192"),
        (judged(temperature=1.5), "temperature", "from 0 to 1"),
    ],
)
def test_each_rule_names_its_field_and_what_is_accepted(
    settings: EvaluationSettings, field: str, says: str
) -> None:
    problems = dict(settings_problems(settings))
    assert field in problems, problems
    assert says in problems[field]


def test_judges_are_the_listed_models_directly_or_through_a_geographic_profile() -> None:
    assert is_judge_model("amazon.nova-pro-v1:0")
    assert is_judge_model("us.anthropic.claude-3-7-sonnet-20250219-v1:0")
    assert not is_judge_model("xx.amazon.nova-pro-v1:0")
    assert not is_judge_model("amazon.nova-pro-v1:0:300k")


# Dataset -----------------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_a_valid_dataset_is_counted_with_its_categories(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "eval.jsonl",
        [
            {"prompt": "a", "referenceResponse": "b", "category": "sql"},
            "",
            {"prompt": "c", "category": "chat"},
            {"prompt": "d", "category": "sql"},
        ],
    )
    check = check_dataset(path, "training_data/eval.jsonl", judged())
    assert (check.records, check.problems, check.categories) == (3, (), ("sql", "chat"))


def test_every_bad_record_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "eval.jsonl",
        [
            {"prompt": "fine"},
            "{not json",
            ["a list"],
            {"prompt": "  "},
            {"prompt": "p", "referenceResponse": 3},
            {"prompt": "p", "reference": "typo"},
            {"prompt": "p", "category": ""},
        ],
    )
    problems = check_dataset(path, "td/eval.jsonl", judged()).problems
    assert problems == (
        "td/eval.jsonl:2: not JSON (Expecting property name enclosed in double quotes); each line is one "
        'object such as {"prompt": "...", "referenceResponse": "..."}',
        "td/eval.jsonl:3: expected a JSON object, got list",
        'td/eval.jsonl:4: "prompt" must be a non-empty string',
        'td/eval.jsonl:5: "referenceResponse" must be a non-empty string when given',
        "td/eval.jsonl:6: unknown key 'reference'; accepted: prompt, referenceResponse, category",
        'td/eval.jsonl:7: "category" must be a non-empty string when given',
    )


def test_programmatic_accuracy_needs_a_reference_on_every_record_a_judge_does_not(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "eval.jsonl", [{"prompt": "p", "referenceResponse": "r"}, {"prompt": "q"}])
    programmatic = EvaluationSettings("x", ("Builtin.Accuracy", "Builtin.Toxicity"), Gate(beat_base=True))
    assert check_dataset(path, "e.jsonl", programmatic).problems == (
        'e.jsonl:2: "referenceResponse" is required: Builtin.Accuracy compare the answer with it',
    )
    assert check_dataset(path, "e.jsonl", judged()).problems == ()


def test_the_prompt_limit_of_an_evaluation_job_and_an_empty_file(tmp_path: Path) -> None:
    many = write_lines(tmp_path / "many.jsonl", [{"prompt": f"p{n}"} for n in range(MAX_PROMPTS + 1)])
    assert check_dataset(many, "many.jsonl", judged()).problems == (
        "many.jsonl:1001: 1001 prompts; an evaluation job takes at most 1000",
    )
    at_limit = write_lines(tmp_path / "ok.jsonl", [{"prompt": f"p{n}"} for n in range(MAX_PROMPTS)])
    assert check_dataset(at_limit, "ok.jsonl", judged()).problems == ()
    empty = write_lines(tmp_path / "empty.jsonl", [""])
    assert check_dataset(empty, "empty.jsonl", judged()).problems == (
        'empty.jsonl:1: no prompts: give one JSON object per line with a "prompt"',
    )


def test_problems_are_capped_with_a_count_of_the_rest(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ["x"] * 25)
    problems = check_dataset(path, "bad.jsonl", judged(), max_problems=20).problems
    assert len(problems) == 21 and problems[-1] == "bad.jsonl: ... and 5 more problems"


def test_a_file_that_is_not_utf8_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"prompt": "caf\xe9"}\n'.encode("latin-1"))
    [problem] = check_dataset(path, "latin1.jsonl", judged()).problems
    assert problem.startswith("latin1.jsonl:1: not UTF-8 text")


# Scores and verdicts -----------------------------------------------------------------------------


def result_row(**values: object) -> dict[str, object]:
    return {
        "automatedEvaluationResult": {
            "scores": [{"metricName": f"Builtin.{name}", "result": value} for name, value in values.items()]
        }
    }


def test_scores_are_means_over_the_scorable_answers() -> None:
    rows = [result_row(Correctness=1.0, Harmfulness=0.0), result_row(Correctness=0.5, Harmfulness=None)]
    rows.append(result_row(Correctness=0.0, Other=1.0))
    got = aggregate(rows, ("Builtin.Correctness", "Builtin.Harmfulness", "Builtin.Completeness"))
    assert got == Scores(
        values={"Builtin.Correctness": 0.5, "Builtin.Harmfulness": 0.0, "Builtin.Completeness": None},
        prompts=3,
    )
    assert Scores.from_json(json.loads(json.dumps(got.to_json()))) == got


def test_a_gate_passes_on_its_minimum_and_maximum_exactly() -> None:
    settings = judged(
        "Builtin.Correctness",
        "Builtin.Harmfulness",
        gate=Gate(minimums={"Builtin.Correctness": 0.7}, maximums={"Builtin.Harmfulness": 0.05}),
    )
    assert judge(settings, scores(Correctness=0.7, Harmfulness=0.05)) == Verdict(passed=True)


def test_a_gate_that_fails_says_which_metric_missed_by_how_much() -> None:
    settings = judged(
        "Builtin.Correctness",
        "Builtin.Harmfulness",
        gate=Gate(minimums={"Builtin.Correctness": 0.7}, maximums={"Builtin.Harmfulness": 0.05}),
    )
    verdict = judge(settings, scores(Correctness=0.61, Harmfulness=0.2))
    assert verdict == Verdict(
        passed=False,
        misses=(
            "Builtin.Correctness: 0.61 < minimum 0.70 (missed by 0.09)",
            "Builtin.Harmfulness: 0.20 > maximum 0.05 (missed by 0.15)",
        ),
    )
    assert Verdict.from_json(json.loads(json.dumps(verdict.to_json()))) == verdict


def test_a_metric_nobody_could_score_fails_the_gate() -> None:
    verdict = judge(judged(), scores(Correctness=None))
    assert verdict.misses == ("Builtin.Correctness: no score (no answer could be scored); minimum 0.70",)


def test_beat_base_compares_every_metric_in_its_direction() -> None:
    settings = judged("Builtin.Correctness", "Builtin.Harmfulness", gate=Gate(beat_base=True))
    base = scores(Correctness=0.66, Harmfulness=0.02)
    assert judge(settings, scores(Correctness=0.66, Harmfulness=0.02), base).passed, (
        "a tie is at least as good"
    )
    lost = judge(settings, scores(Correctness=0.61, Harmfulness=0.05), base)
    assert lost.misses == (
        "beat_base: Builtin.Correctness: 0.61 < base model 0.66 (by 0.05)",
        "beat_base: Builtin.Harmfulness: 0.05 > base model 0.02 (by 0.03)",
    )
    assert judge(settings, scores(Correctness=0.9, Harmfulness=0.0), None).misses == (
        "beat_base: the base model has no scores (its evaluation did not complete)",
    )
    assert judge(
        settings, scores(Correctness=0.9, Harmfulness=0.0), scores(Correctness=0.5, Harmfulness=None)
    ).misses == ("beat_base: Builtin.Harmfulness: the base model has no score",)


# Ranking -----------------------------------------------------------------------------------------


def outcome(name: str, score: float, cost: float | None, passed: bool = True) -> TrialOutcome:
    return TrialOutcome(name, Verdict(passed), scores(Correctness=score), cost)


def test_passed_trials_rank_by_score_then_cost_then_name() -> None:
    settings = judged()
    outcomes = [
        outcome("main", 0.80, 400.0),
        outcome("micro", 0.80004, 120.0),  # equal to four decimals: a tie, the cheaper wins
        outcome("best-but-failed", 0.99, 10.0, passed=False),
        outcome("pro", 0.85, 2000.0),
        outcome("unknown-cost", 0.80, None),
        outcome("also-main-cost", 0.80, 400.0),
    ]
    assert [o.name for o in rank(settings, outcomes)] == [
        "pro",
        "micro",
        "also-main-cost",
        "main",
        "unknown-cost",
    ]
    assert winner(settings, outcomes) == outcomes[3]
    assert winner(settings, [outcome("x", 0.9, 1.0, passed=False)]) is None


def test_a_lower_is_better_ranking_metric_ranks_the_lowest_first() -> None:
    settings = judged("Builtin.Harmfulness", gate=Gate(maximums={"Builtin.Harmfulness": 0.5}))
    low = TrialOutcome("low", Verdict(True), scores(Harmfulness=0.01), 500.0)
    high = TrialOutcome("high", Verdict(True), scores(Harmfulness=0.2), 1.0)
    assert [o.name for o in rank(settings, [high, low])] == ["low", "high"]
