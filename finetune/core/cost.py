"""Cost of one fine-tuning in one environment: training, storage and serving, every figure with its
source, checked against the environment's budget, and the cheaper serving option named.

Billing (Bedrock pricing page; `finetune.core.prices` cites each figure):
- Training is billed per token processed: tokens in the training data x epochCount x the rate per
  1,000 tokens. The two Titan image models bill per image seen instead: Titan Image Generator sees
  stepCount x batchSize images, Titan Multimodal Embeddings every record once per epoch.
- A distillation also bills the teacher's on-demand inference on the prompts (estimated here from the
  prompt tokens) and on the responses it writes, whose length is not known before the job: the
  estimate is a lower bound and says so.
- Storage: per custom model and month. Provisioned Throughput: per model unit and hour, by commitment.
  An on-demand deployment: per input and output token, no hourly charge.

Decisions:
- Token counts are the Bedrock user guide's approximation, characters / 6
  (`finetune.core.formats.TOKEN_ESTIMATE_METHOD`), for every model: no model's own documentation
  gives a better rule (third parties put Claude nearer 3.5 characters per token, which would make the
  estimate of a Claude job low by up to ~40%; `CountTokens` needs an AWS account). The rule is named
  wherever a token count is shown.
- Epochs: the configured epochCount, else the catalog default. An epochCount chosen by Bedrock
  ("Auto") or without a documented default makes the training cost unknown, never guessed.
- A month of serving is 30 days (720 hours); a SixMonths commitment is 6 such months.
  `serving.expected_tokens_per_month` is read as tokens per 30 days.
- Unknown prices stay unknown and render as "unknown"; a total built from one is unknown. A budget
  check that needs an unknown figure is an error, never a pass (`budget_problems`).
- The cheaper option: where the model can be served both ways in the region, the estimate compares
  the on-demand cost at the expected traffic with the configured provisioned throughput (or one
  no-commitment unit when the configuration serves on demand) and states the break-even traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from finetune.core.catalog import DISTILLATION, ModelEntry
from finetune.core.config import DataFile, EnvironmentConfig, ExpectedTraffic, FieldError, FineTuningConfig
from finetune.core.contracts import TrainingBudget, TrainingRate
from finetune.core.evaluation import EvaluationSettings
from finetune.core.prices import (
    IMAGES,
    PT_FIELDS,
    InferencePrice,
    Price,
    Prices,
    Source,
    base_inference,
    format_usd,
    prices_for,
)

HOURS_PER_30_DAYS = 24 * 30
COMMITMENT_MONTHS = {"none": 0, "OneMonth": 1, "SixMonths": 6}
COMMITMENT_LABELS = {
    "none": "no commitment",
    "OneMonth": "OneMonth commitment",
    "SixMonths": "SixMonths commitment",
}
SUMMARY_MAX_CHARS = 200
NOT_SERVED = Source("serving mode none: the model is not served", "cdk.json", "", official=True)
NOT_EVALUATED = Source("not part of this evaluation (cdk.json)", "cdk.json", "", official=True)


@dataclass(frozen=True)
class DataSize:
    """What the validator counted in the training data."""

    tokens: int
    records: int
    token_method: str


@dataclass(frozen=True)
class ServingComparison:
    """On-demand vs provisioned throughput for one model, per 30 days."""

    provisioned_label: str
    provisioned: Price  # per 30 days
    input_price: Price  # on-demand, per 1k tokens
    output_price: Price
    traffic: ExpectedTraffic | None

    @property
    def on_demand(self) -> Price | None:
        """The on-demand cost at the expected traffic; None without one."""
        if self.traffic is None:
            return None
        if self.input_price.value is None or self.output_price.value is None:
            return Price(None, self.input_price.source)
        value = (
            self.traffic.input_tokens / 1000 * self.input_price.value
            + self.traffic.output_tokens / 1000 * self.output_price.value
        )
        return Price(value, self.input_price.source)

    def break_even(self) -> tuple[int, int] | None:
        """The tokens per 30 days at which on demand costs what the throughput does: all input, all
        output. None when a price is unknown."""
        pt, unit_in, unit_out = self.provisioned.value, self.input_price.value, self.output_price.value
        if pt is None or not unit_in or not unit_out:
            return None
        return round(pt / unit_in * 1000), round(pt / unit_out * 1000)

    def verdict(self) -> str:
        on_demand = self.on_demand
        pt = self.provisioned.value
        if on_demand is None or on_demand.value is None or pt is None:
            if self.break_even() is None:
                return "cannot be compared: a price is unknown"
            return "depends on traffic: set serving.expected_tokens_per_month to compare"
        if on_demand.value < pt:
            return f"on-demand is cheaper by {format_usd(pt - on_demand.value)} per 30 days"
        if on_demand.value > pt:
            return f"{self.provisioned_label} is cheaper by {format_usd(on_demand.value - pt)} per 30 days"
        return "both cost the same per 30 days"

    def lines(self) -> list[tuple[str, str]]:
        rows = [
            (f"{self.provisioned_label}, 30 days", self.provisioned.render()),
            ("on-demand per 1k tokens", f"{self.input_price.render()} in, {self.output_price.render()} out"),
        ]
        on_demand = self.on_demand
        if on_demand is not None and self.traffic is not None:
            rows.append(
                (
                    "on-demand at expected traffic",
                    f"{on_demand.render()} ({self.traffic.input_tokens:,} in + "
                    f"{self.traffic.output_tokens:,} out tokens per 30 days)",
                )
            )
        even = self.break_even()
        if even is not None:
            rows.append(
                (
                    "break-even traffic",
                    f"{even[0]:,} input tokens or {even[1]:,} output tokens per 30 days "
                    "(or any mix costing the same); above it provisioned throughput is cheaper",
                )
            )
        rows.append(("cheaper", self.verdict()))
        return rows


@dataclass(frozen=True)
class CostEstimate:
    """The estimated cost of one fine-tuning in one environment (USD)."""

    model_id: str
    model_name: str
    customization_type: str
    region: str
    data: DataSize
    epochs: int | None  # None: unknown (chosen by Bedrock); 1 for models without epochCount
    epochs_note: str
    prices: Prices  # with the environment's overrides
    training_rate: TrainingRate | None  # None: unknown (`training_unknown` says why)
    training_unknown: str
    storage: Price  # per month
    serving_mode: str
    model_units: int
    commitment: str
    serving_price: Price | None  # per model unit and hour; None unless provisioned
    serving_per_hour: Price | None  # None: on-demand (per token)
    serving_per_30_days: Price  # unknown for on-demand without expected traffic
    traffic: ExpectedTraffic | None
    commitment_total: Price | None  # the whole committed term; None without a commitment
    comparison: ServingComparison | None
    notes: tuple[str, ...] = ()

    @property
    def training(self) -> Price:
        """The whole training job."""
        price = self.prices.training
        if self.training_rate is None:
            return Price(None, price.source, price.offered)
        return Price(self.training_rate.cost(self.data.tokens, self.data.records), price.source)

    @property
    def billed_tokens(self) -> int | None:
        if self.epochs is None or self.prices.training_unit == IMAGES:
            return None
        return self.data.tokens * self.epochs

    @property
    def per_30_days(self) -> Price:
        """What the fine-tuning costs per 30 days once trained: serving plus storage."""
        return add(self.serving_per_30_days, self.storage)

    def summary(self) -> str:
        """One line (<= 200 characters) for tables and the CloudFormation stack description."""
        text = (
            f"Est. cost (USD): training {self.training.render()}; storage {self.storage.render('/month')}; "
            f"serving {self._serving_short()}"
        )
        if len(text) > SUMMARY_MAX_CHARS:
            text = text[: SUMMARY_MAX_CHARS - 3] + "..."
        return text

    def lines(self) -> list[str]:
        """The detailed breakdown, with inputs and price sources, for `cost` and the template."""
        training: list[tuple[str, str]] = [
            ("training tokens", f"{self.data.tokens:,}, counted as {self.data.token_method}"),
            ("records", f"{self.data.records:,}"),
            ("epochs", f"{self.epochs if self.epochs is not None else 'unknown'} ({self.epochs_note})"),
        ]
        billed = self.billed_tokens
        if billed is not None:
            training.append(("billed tokens", f"{billed:,}"))
        unit = "per image seen" if self.prices.training_unit == IMAGES else "per 1k tokens"
        training.append((f"price {unit}", with_source(self.prices.training)))
        if self.training_rate is not None:
            training.append(("how", self.training_rate.basis))
        else:
            training.append(("how", f"unknown: {self.training_unknown}"))
        training.append(("training (one job)", self.training.render()))
        storage = [("per month", with_source(self.storage))]
        serving: list[tuple[str, str]] = []
        if self.serving_mode == "provisioned":
            assert self.serving_price is not None and self.serving_per_hour is not None
            serving += [
                ("price per unit-hour", with_source(self.serving_price)),
                (f"per hour ({self.model_units} x unit)", self.serving_per_hour.render()),
            ]
        serving.append((f"per 30 days ({HOURS_PER_30_DAYS} h)", self._per_30_days_text()))
        if self.commitment_total is not None:
            months = COMMITMENT_MONTHS[self.commitment]
            serving.append((f"committed term ({months} x 30 days)", self.commitment_total.render()))
        sections = [
            ("Training:", training),
            ("Storage:", storage),
            (f"Serving: {self._serving_heading()}", serving),
            ("Per 30 days once trained:", [("serving + storage", self.per_30_days.render())]),
        ]
        if self.comparison is not None:
            sections.append(("On-demand vs provisioned throughput:", self.comparison.lines()))
        width = max(len(label) for _, rows in sections for label, _ in rows)
        out = [
            f"Cost estimate for {self.model_name} ({self.model_id}), {self.customization_type}, "
            f"in {self.region}, in USD"
        ]
        for title, rows in sections:
            out.append(title)
            out.extend(f"  {label.ljust(width)}  {value}" for label, value in rows)
        if self.notes:
            out.append("Notes:")
            out.extend(f"  - {note}" for note in self.notes)
        return out

    def _serving_heading(self) -> str:
        if self.serving_mode == "none":
            return "none (the custom model is not served)"
        if self.serving_mode == "on_demand":
            return "on-demand deployment (billed per token)"
        units = f"{self.model_units} model unit" + ("s" if self.model_units != 1 else "")
        return f"Provisioned Throughput, {units}, {COMMITMENT_LABELS[self.commitment]}"

    def _per_30_days_text(self) -> str:
        if self.serving_mode == "on_demand" and self.traffic is None:
            return "usage-based: set serving.expected_tokens_per_month for a figure"
        return self.serving_per_30_days.render()

    def _serving_short(self) -> str:
        if self.serving_mode == "none":
            return "none ($0)"
        if self.serving_mode == "on_demand":
            known = self.serving_per_30_days.value is not None
            return (
                f"on-demand {self.serving_per_30_days.render('/30d')}" if known else "on-demand (per token)"
            )
        assert self.serving_per_hour is not None
        units = f"{self.model_units} unit" + ("s" if self.model_units != 1 else "")
        commitment = "" if self.commitment == "none" else f" {self.commitment}"
        return f"PT {units}{commitment} {self.serving_per_hour.render('/h')}"


def add(*prices: Price) -> Price:
    """The sum; unknown when any part is unknown (it names the first unknown part's source)."""
    for price in prices:
        if price.value is None:
            return Price(None, price.source)
    total = sum(price.value for price in prices if price.value is not None)
    source = next((p.source for p in prices if p.unverified), prices[0].source)
    return Price(total, source)


def estimate_cost(ft: FineTuningConfig, model: ModelEntry, data: DataSize) -> CostEstimate:
    """Estimate the cost of `ft` on `model` for the counted training `data`.

    Prices are the list prices of the fine-tuning's region with the environment's cdk.json `pricing`
    overrides applied.
    """
    prices = prices_for(model.identifiers, ft.region, ft.environment.pricing)
    epochs, epochs_note = _epochs(ft, model)
    rate, unknown_why, notes = _training_rate(ft, model, prices, epochs, epochs_note)

    serving = ft.serving
    serving_price: Price | None = None
    commitment_total: Price | None = None
    per_hour: Price | None
    if serving.mode == "none":
        per_hour = Price(0.0, NOT_SERVED)
        per_30_days = Price(0.0, NOT_SERVED)
    elif serving.mode == "on_demand":
        per_hour = None
        per_30_days = _on_demand_cost(prices, ft.expected_traffic)
    else:
        serving_price = prices.pt_per_hour(serving.commitment)
        per_hour = serving_price.scaled(serving.model_units)
        per_30_days = serving_price.scaled(serving.model_units * HOURS_PER_30_DAYS)
        months = COMMITMENT_MONTHS[serving.commitment]
        if months:
            commitment_total = serving_price.scaled(serving.model_units * HOURS_PER_30_DAYS * months)
            notes.append(
                f"A {serving.commitment} commitment cannot be deleted before its term ends and renews by itself."
            )
        else:
            notes.append("No-commitment Provisioned Throughput bills every hour until it is deleted.")

    return CostEstimate(
        model_id=model.model_id,
        model_name=model.name,
        customization_type=ft.customization_type,
        region=ft.region,
        data=data,
        epochs=epochs,
        epochs_note=epochs_note,
        prices=prices,
        training_rate=rate,
        training_unknown=unknown_why,
        storage=prices.storage_per_month,
        serving_mode=serving.mode,
        model_units=serving.model_units,
        commitment=serving.commitment,
        serving_price=serving_price,
        serving_per_hour=per_hour,
        serving_per_30_days=per_30_days,
        traffic=ft.expected_traffic,
        commitment_total=commitment_total,
        comparison=_comparison(ft, model, prices),
        notes=tuple(notes),
    )


def _on_demand_cost(prices: Prices, traffic: ExpectedTraffic | None) -> Price:
    source = prices.on_demand_input_per_1k_tokens.source
    if traffic is None:
        return Price(None, source)
    per_input, per_output = prices.on_demand_input_per_1k_tokens, prices.on_demand_output_per_1k_tokens
    return add(per_input.scaled(traffic.input_tokens / 1000), per_output.scaled(traffic.output_tokens / 1000))


def _comparison(ft: FineTuningConfig, model: ModelEntry, prices: Prices) -> ServingComparison | None:
    """Only where the model can be served both ways in the region, and the configuration serves."""
    if ft.serving.mode == "none" or ft.region not in model.serving.on_demand_regions:
        return None
    if not (model.serving.provisioned and prices.pt_no_commitment_per_hour.offered):
        return None
    if ft.serving.mode == "provisioned":
        units, commitment = ft.serving.model_units, ft.serving.commitment
    else:
        units, commitment = 1, "none"
    label = (
        f"provisioned throughput ({units} unit{'s' if units != 1 else ''}, {COMMITMENT_LABELS[commitment]})"
    )
    return ServingComparison(
        provisioned_label=label,
        provisioned=prices.pt_per_hour(commitment).scaled(units * HOURS_PER_30_DAYS),
        input_price=prices.on_demand_input_per_1k_tokens,
        output_price=prices.on_demand_output_per_1k_tokens,
        traffic=ft.expected_traffic,
    )


def _training_rate(
    ft: FineTuningConfig, model: ModelEntry, prices: Prices, epochs: int | None, epochs_note: str
) -> tuple[TrainingRate | None, str, list[str]]:
    """The rate, or why it is unknown, and notes for people."""
    notes: list[str] = []
    price = prices.training
    if price.value is None:
        why = (
            f"the price {prices.training_field} of {model.model_id} in {ft.region} is "
            f"{price.render()}: set environments.{ft.environment.name}.pricing.{model.model_id}."
            f"{prices.training_field}"
        )
        return None, why, notes
    if prices.training_unit == IMAGES:
        return _image_rate(ft, model, price.value, epochs, epochs_note)
    if epochs is None:
        return None, epochs_note, notes
    per_token = price.value * epochs / 1000
    basis = f"tokens x {epochs} epoch{'s' if epochs != 1 else ''} x {format_usd(price.value)} per 1k tokens"
    if ft.customization_type == DISTILLATION and ft.teacher_model:
        teacher = base_inference(ft.teacher_model)
        notes.append(
            f"Distillation: a lower bound. The teacher {ft.teacher_model} is billed for its responses "
            f"too ({teacher.output_per_1k_tokens.render()} per 1k output tokens), and the student trains "
            "on them: their length is not known before the job."
        )
        if teacher.input_per_1k_tokens.value is None:
            return None, f"the on-demand price of the teacher {ft.teacher_model} is unknown", notes
        per_token += teacher.input_per_1k_tokens.value / 1000
        basis += f" + the teacher reading the prompts at {format_usd(teacher.input_per_1k_tokens.value)} per 1k tokens"
    return TrainingRate(per_token=per_token, basis=basis), "", notes


def _image_rate(
    ft: FineTuningConfig, model: ModelEntry, price: float, epochs: int | None, epochs_note: str
) -> tuple[TrainingRate | None, str, list[str]]:
    """Per image seen: stepCount x batchSize for Titan Image Generator, records x epochs otherwise."""
    if model.hyperparameter("stepCount") is not None:
        steps, batch = _setting(ft, model, "stepCount"), _setting(ft, model, "batchSize")
        if not isinstance(steps, int) or not isinstance(batch, int):
            return None, f"stepCount {steps!r} x batchSize {batch!r} is not known before the job", []
        basis = f"{steps:,} steps x batch {batch} images x {format_usd(price)} per image"
        return TrainingRate(fixed=price * steps * batch, basis=basis), "", []
    if epochs is None:
        return None, epochs_note, []
    basis = f"records x {epochs} epochs x {format_usd(price)} per image"
    return TrainingRate(per_record=price * epochs, basis=basis), "", []


def _setting(ft: FineTuningConfig, model: ModelEntry, key: str) -> object:
    spec = model.hyperparameter(key)
    value = ft.hyperparameters.get(key, spec.default if spec else None)
    return None if isinstance(value, bool) else value


def _epochs(ft: FineTuningConfig, model: ModelEntry) -> tuple[int | None, str]:
    spec = model.hyperparameter("epochCount")
    if spec is None:
        return 1, f"{model.name} takes no epochCount"
    value = ft.hyperparameters.get("epochCount", spec.default)
    if "epochCount" in ft.hyperparameters:
        origin = "epochCount from the configuration"
    else:
        origin = "epochCount default of the catalog"
    if value is None:
        return None, "no epochCount given and no default documented: set hyperparameters.epochCount"
    if isinstance(value, int) and not isinstance(value, bool):
        return value, origin
    if isinstance(value, str):
        return None, f"epochCount {value!r} is chosen by Bedrock: set a number to know the cost"
    return None, f"epochCount {value!r} is not a whole number"


def with_source(price: Price) -> str:
    """A price with where it comes from: `$0.012  [source: TITLE, URL, as of DATE]`."""
    return f"{price.render()}  [source: {price.source.cite()}]"


def training_cost_line(estimate: CostEstimate, settings: str) -> str:
    """One line for `validate`: the training cost of the estimate's data, made with `settings`
    ("default hyperparameters", or a fine-tuning's)."""
    how = estimate.training_rate.basis if estimate.training_rate else estimate.training_unknown
    return (
        f"estimated training cost in {estimate.region}: {estimate.training.render()} ({how}; {settings}); "
        f"price {with_source(estimate.prices.training)}"
    )


def default_estimate(model: ModelEntry, region: str, data: DataSize) -> CostEstimate:
    """The estimate for `data` on `model` in `region` with the catalog's default hyperparameters."""
    ft = FineTuningConfig(
        name="validate",
        environment=EnvironmentConfig(name="validate", region=region),
        base_model=model.model_id,
        region=region,
        training_data=DataFile("", Path()),
    )
    return estimate_cost(ft, model, data)


def estimate_on(ft: FineTuningConfig, data: DataSize, model: ModelEntry, other: ModelEntry) -> CostEstimate:
    """What the same data and hyperparameters would cost on `other` instead of `model` (the
    configured base model): "test the cheaper model first".

    Hyperparameters `other` takes keep their value when in its range; the others fall back to its
    defaults. Where `other` is not customizable (or not served as configured) in the fine-tuning's
    region, its first customization region (provisioned throughput) is priced instead. Each such
    change is a note of the estimate.
    """
    notes: list[str] = []
    hyperparameters = {}
    for key, value in ft.hyperparameters.items():
        spec = other.hyperparameter(key)
        if spec is None:
            notes.append(f"{other.name} takes no {key}: left out")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not spec.in_range(value):
            notes.append(
                f"{key} {value!r} is outside {other.name}'s {spec.range_text()}: its default is used"
            )
        else:
            hyperparameters[key] = value
    regions = other.regions_for(ft.customization_type)
    region = ft.region if ft.region in regions else (regions[0] if regions else ft.region)
    if region != ft.region:
        notes.append(f"{other.name} is not customizable in {ft.region}: priced in {region}")
    serving = ft.serving
    if serving.mode == "on_demand" and region not in other.serving.on_demand_regions:
        serving = replace(serving, mode="provisioned", model_units=1, commitment="none")
        notes.append(f"{other.name} has no on-demand serving in {region}: priced as one no-commitment unit")
    formats = (model.dataset_limits(ft.customization_type), other.dataset_limits(ft.customization_type))
    if formats[1] is None:
        notes.append(f"{other.name} does not support {ft.customization_type}: no training price applies")
    elif formats[0] is not None and formats[0].data_format != formats[1].data_format:
        notes.append(
            f"the data is in {formats[0].data_format} format; {other.name} takes {formats[1].data_format}: "
            "it would need converting (token counts are the same estimate)"
        )
    moved = replace(
        ft, base_model=other.model_id, region=region, hyperparameters=hyperparameters, serving=serving
    )
    estimate = estimate_cost(moved, other, data)
    return replace(estimate, notes=(*notes, *estimate.notes))


# --------------------------------------------------------------------------------------------------
# Budgets
# --------------------------------------------------------------------------------------------------


def training_budget(environment: EnvironmentConfig, estimate: CostEstimate) -> TrainingBudget | None:
    """The runtime form of the environment's training budget for this estimate (None: no budget, or
    a rate synth already refused)."""
    limit = environment.budget.training_usd
    if limit is None or estimate.training_rate is None:
        return None
    field = f"environments.{environment.name}.budget.training_usd"
    return TrainingBudget(limit_usd=limit, rate=estimate.training_rate, field=field)


def budget_problems(
    environment: EnvironmentConfig, estimates: Sequence[tuple[str, CostEstimate]]
) -> list[FieldError]:
    """Every estimate of the environment over its budget, or whose check needs an unknown figure."""
    budget = environment.budget
    path = f"environments.{environment.name}.budget"
    problems: list[FieldError] = []
    for name, estimate in estimates:
        if budget.training_usd is not None:
            problems += _check(
                f"{path}.training_usd",
                budget.training_usd,
                f"{name}: estimated training",
                estimate.training,
                estimate.training_rate.basis if estimate.training_rate else estimate.training_unknown,
                "lower epochCount, train on less data, or try a cheaper model "
                f"(python -m finetune cost {environment.name} {name} --model ID)",
            )
        if budget.serving_usd_per_month is not None:
            problems += _check(
                f"{path}.serving_usd_per_month",
                budget.serving_usd_per_month,
                f"{name}: estimated serving per 30 days",
                estimate.serving_per_30_days,
                _serving_needs(environment, name, estimate),
                _serving_hint(estimate),
            )
    if budget.total_usd_per_month is not None and estimates:
        monthly = [estimate.per_30_days for _, estimate in estimates]
        unknown = [
            name for (name, estimate), price in zip(estimates, monthly, strict=True) if price.value is None
        ]
        if unknown:
            problems.append(
                FieldError(
                    f"{path}.total_usd_per_month",
                    f"the check needs the serving and storage cost of every fine-tuning; unknown for "
                    f"{', '.join(unknown)} ({_serving_needs(environment, unknown[0], dict(estimates)[unknown[0]])})",
                )
            )
        else:
            total = sum(price.value for price in monthly if price.value is not None)
            parts = ", ".join(
                f"{name} {price.render()}" for (name, _), price in zip(estimates, monthly, strict=True)
            )
            if total > budget.total_usd_per_month:
                problems.append(
                    FieldError(
                        f"{path}.total_usd_per_month",
                        f"serving and storage of the environment are estimated at {format_usd(total)} per "
                        f"30 days ({parts}), over the budget of {format_usd(budget.total_usd_per_month)} by "
                        f"{format_usd(total - budget.total_usd_per_month)}",
                    )
                )
    return problems


def evaluation_budget_problems(
    environment: EnvironmentConfig, trials: Sequence[tuple[str, TrialCost]]
) -> list[FieldError]:
    """Each trial's evaluation cost, at most, against `budget.evaluation_usd` (the temporary
    endpoint bills by the hour while a trial is evaluated)."""
    limit = environment.budget.evaluation_usd
    if limit is None:
        return []
    field = f"environments.{environment.name}.budget.evaluation_usd"
    problems: list[FieldError] = []
    for name, cost in trials:
        problems += _check(
            field,
            limit,
            f"{name}: estimated evaluation per trial, at most,",
            cost.total,
            cost.how,
            "lower evaluation.max_hours, evaluate fewer prompts, or use a judge on a model served on demand",
        )
    return problems


def _check(field: str, limit: float, what: str, price: Price, how: str, hint: str) -> list[FieldError]:
    if price.value is None:
        return [FieldError(field, f"{what} is unknown, and the budget check needs it: {how}")]
    if price.value <= limit:
        return []
    return [
        FieldError(
            field,
            f"{what} {format_usd(price.value)} ({how}) exceeds the budget of {format_usd(limit)} by "
            f"{format_usd(price.value - limit)}: {hint}, or raise the budget",
        )
    ]


def _serving_needs(environment: EnvironmentConfig, name: str, estimate: CostEstimate) -> str:
    """How the serving cost was made, or what is missing to know it."""
    if estimate.serving_mode == "none":
        return "not served"
    if estimate.serving_mode == "on_demand":
        if estimate.traffic is None:
            return f"on-demand bills per token: set fine_tunings.{name}.serving.expected_tokens_per_month"
        fields = ("on_demand_input_per_1k_tokens", "on_demand_output_per_1k_tokens")
        return _known_or_override(environment, estimate, fields, "on-demand at the expected traffic")
    return _known_or_override(
        environment,
        estimate,
        (PT_FIELDS[estimate.commitment],),
        f"{estimate.model_units} unit(s) x {HOURS_PER_30_DAYS} h",
    )


def _known_or_override(
    environment: EnvironmentConfig, estimate: CostEstimate, fields: Sequence[str], how: str
) -> str:
    unknown = [field for field in fields if estimate.prices.get(field).value is None]
    if not unknown:
        return how
    return (
        f"the price {unknown[0]} of {estimate.model_id} in {estimate.region} is "
        f"{estimate.prices.get(unknown[0]).render()}: set "
        f"environments.{environment.name}.pricing.{estimate.model_id}.{unknown[0]}"
    )


def _serving_hint(estimate: CostEstimate) -> str:
    if estimate.comparison is not None:
        return f"compare serving on demand ({estimate.comparison.verdict()})"
    return "serve fewer model units, or a cheaper model"


# Assumed tokens a judge writes per prompt and metric (a score and its explanation): Bedrock does
# not publish the judge prompts' output length, so this is a stated estimate, not a price.
JUDGE_OUTPUT_TOKENS_PER_METRIC = 300


@dataclass(frozen=True)
class TrialCost:
    """What evaluating one trial's model costs, at most: the temporary endpoint, the base model's
    evaluation (beat_base) and the judge's inference. Bedrock's evaluation jobs bill only the
    inference they run."""

    endpoint: Price
    endpoint_how: str
    base: Price
    judge: Price

    @property
    def total(self) -> Price:
        return add(self.endpoint, self.base, self.judge)

    @property
    def how(self) -> str:
        """How the total is made, or which of its parts nobody publishes a price for."""
        unknown = [
            part
            for part, price in (
                ("the temporary endpoint's", self.endpoint),
                ("the base model's", self.base),
                ("the judge's", self.judge),
            )
            if price.value is None
        ]
        if unknown:
            return f"{' and '.join(unknown)} price is unknown: a pricing override of that model sets it"
        return self.endpoint_how

    def lines(self) -> list[str]:
        return [
            f"temporary endpoint: {self.endpoint.render()} ({self.endpoint_how})",
            f"base model evaluation: {self.base.render()}",
            f"judge: {self.judge.render()}",
            f"per trial, at most: {self.total.render()}",
        ]


def trial_cost(
    estimate: CostEstimate, settings: EvaluationSettings, prompts: int, prompt_tokens: int
) -> TrialCost:
    """The evaluation cost of one trial of `estimate`'s model on a dataset of `prompts` prompts.

    The temporary endpoint is an on-demand deployment where the model has one and a judge scores
    (its responses are then generated and handed to the job), else one no-commitment PT unit for
    at most `max_hours`. Output tokens are counted at `max_tokens` per prompt: an upper bound.
    """
    responses = prompts * settings.max_tokens
    prices = estimate.prices
    if settings.uses_judge and prices.on_demand_input_per_1k_tokens.offered:
        endpoint = inference_cost(
            InferencePrice(prices.on_demand_input_per_1k_tokens, prices.on_demand_output_per_1k_tokens),
            prompt_tokens,
            responses,
        )
        how = f"on-demand deployment, {prompt_tokens:,} tokens in and up to {responses:,} out"
    else:
        endpoint = prices.pt_per_hour("none").scaled(settings.max_hours)
        how = f"1 no-commitment PT unit for at most {settings.max_hours} h (max_hours)"
    zero = Price(0.0, NOT_EVALUATED)
    base = (
        inference_cost(base_inference(estimate.model_id), prompt_tokens, responses)
        if settings.gate.beat_base
        else zero
    )
    judge = zero
    if settings.judge_model is not None:
        metrics = len(settings.metrics)
        judged = 2 if settings.gate.beat_base else 1  # the base model's answers are judged too
        judge = inference_cost(
            base_inference(settings.judge_model),
            metrics * judged * (prompt_tokens + responses),
            metrics * judged * prompts * JUDGE_OUTPUT_TOKENS_PER_METRIC,
        )
    return TrialCost(endpoint=endpoint, endpoint_how=how, base=base, judge=judge)


def inference_cost(price: InferencePrice, input_tokens: int, output_tokens: int) -> Price:
    """The on-demand cost of `input_tokens` in and `output_tokens` out at `price`."""
    return add(
        price.input_per_1k_tokens.scaled(input_tokens / 1000),
        price.output_per_1k_tokens.scaled(output_tokens / 1000),
    )
