"""Cost arithmetic for one fine-tuning: training, storage and serving, with the source of each price.

Billing model (Bedrock user guide "Custom models", shared/bedrock-reference.md section 7):
training is billed per token processed (tokens in the training data x epochCount), each custom model
per month of storage, Provisioned Throughput per model unit and hour by commitment.

Decisions:
- Epochs: the configured epochCount, else the catalog default. A model without an epochCount key
  (Titan Image Generator trains by stepCount) is assumed to make one pass over the data, and the
  estimate says so. An epochCount chosen by Bedrock ("Auto") or without a documented default makes
  the training cost unknown rather than guessed.
- A month of serving is 30 days (720 hours); a SixMonths commitment is 6 such months.
- Unknown prices stay None and render as "unknown"; an estimate built from one is unknown too.
  Serving mode "none" is a real $0. On-demand deployments are billed per inference token, so their
  serving cost is usage-based: no hourly figure is given.
- Distillation also pays for the teacher's inference that generates the synthetic data, which this
  estimate does not include (it says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from finetune.core.catalog import (
    DISTILLATION,
    REINFORCEMENT_FINE_TUNING,
    ModelEntry,
    Price,
    prices_for,
)
from finetune.core.config import FineTuningConfig, HyperparameterValue

HOURS_PER_30_DAYS = 24 * 30
COMMITMENT_MONTHS = {"none": 0, "OneMonth": 1, "SixMonths": 6}
COMMITMENT_LABELS = {
    "none": "no commitment",
    "OneMonth": "OneMonth commitment",
    "SixMonths": "SixMonths commitment",
}
SUMMARY_MAX_CHARS = 200


@dataclass(frozen=True)
class CostEstimate:
    """The estimated cost of one fine-tuning in one environment (USD)."""

    model_id: str
    model_name: str
    customization_type: str
    training_tokens: int
    token_method: str
    epochs: int | None  # None: unknown (chosen by Bedrock)
    epochs_note: str
    training_price: Price  # per 1k tokens
    training: Price  # the whole training job
    storage: Price  # per month
    serving_mode: str
    model_units: int
    commitment: str
    serving_price: Price | None  # per model unit and hour; None unless provisioned
    serving_per_hour: Price | None  # None: on-demand, usage-based
    serving_per_30_days: Price | None
    commitment_total: Price | None  # the whole committed term; None without a commitment
    notes: tuple[str, ...] = ()

    @property
    def billed_tokens(self) -> int | None:
        return None if self.epochs is None else self.training_tokens * self.epochs

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
        """The detailed breakdown, with inputs and price sources, for the `cost` command."""
        billed = self.billed_tokens
        training: list[tuple[str, str]] = [
            ("training tokens", f"{self.training_tokens:,}, counted as {self.token_method}"),
            ("epochs", f"{self.epochs if self.epochs is not None else 'unknown'} ({self.epochs_note})"),
            ("billed tokens", f"{billed:,}" if billed is not None else "unknown"),
            ("price per 1k tokens", _with_source(self.training_price)),
            ("training (one job)", self.training.render()),
        ]
        storage = [("per month", _with_source(self.storage))]
        serving: list[tuple[str, str]] = []
        if self.serving_mode == "none":
            serving.append(("per 30 days", self._per_30_days_text()))
        elif self.serving_mode == "on_demand":
            serving.append(("per hour", "usage-based: billed per inference token, no hourly charge"))
        else:
            assert self.serving_price is not None and self.serving_per_hour is not None
            serving += [
                ("price per unit-hour", _with_source(self.serving_price)),
                (f"per hour ({self.model_units} x unit)", self.serving_per_hour.render()),
                (f"per 30 days ({HOURS_PER_30_DAYS} h)", self._per_30_days_text()),
            ]
            if self.commitment_total is not None:
                months = COMMITMENT_MONTHS[self.commitment]
                serving.append((f"committed term ({months} x 30 days)", self.commitment_total.render()))
        sections = [
            ("Training:", training),
            ("Storage:", storage),
            (f"Serving: {self._serving_heading()}", serving),
        ]
        width = max(len(label) for _, rows in sections for label, _ in rows)
        out = [f"Cost estimate for {self.model_name} ({self.model_id}), {self.customization_type}, in USD"]
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
            return "on-demand deployment"
        units = f"{self.model_units} model unit" + ("s" if self.model_units != 1 else "")
        return f"Provisioned Throughput, {units}, {COMMITMENT_LABELS[self.commitment]}"

    def _per_30_days_text(self) -> str:
        return self.serving_per_30_days.render() if self.serving_per_30_days else "usage-based"

    def _serving_short(self) -> str:
        if self.serving_mode == "none":
            return "none ($0)"
        if self.serving_mode == "on_demand":
            return "on-demand (per token)"
        assert self.serving_per_hour is not None
        units = f"{self.model_units} unit" + ("s" if self.model_units != 1 else "")
        commitment = "" if self.commitment == "none" else f" {self.commitment}"
        return f"PT {units}{commitment} {self.serving_per_hour.render('/h')}"


def estimate_cost(
    ft: FineTuningConfig, model: ModelEntry, training_tokens: int, token_method: str
) -> CostEstimate:
    """Estimate the cost of `ft` on `model` for `training_tokens` tokens counted by `token_method`.

    Prices are the catalog's with the environment's cdk.json `pricing` overrides applied.
    """
    prices = prices_for(model, ft.environment.pricing)
    epochs, epochs_note = _epochs(ft.hyperparameters, model)
    notes: list[str] = []
    if ft.customization_type == DISTILLATION:
        notes.append(
            "Distillation also bills the teacher model's inference for synthetic data: not included."
        )
    if ft.customization_type == REINFORCEMENT_FINE_TUNING:
        notes.append("Reinforcement fine-tuning also bills the grader's invocations: not included.")

    training_price = prices.training_per_1k_tokens
    if epochs is None:
        training = Price(None, "epochs unknown", None)
    else:
        training = _scaled(training_price, training_tokens * epochs / 1000)

    serving = ft.serving
    serving_price: Price | None = None
    commitment_total: Price | None = None
    per_hour: Price | None
    per_30_days: Price | None
    if serving.mode == "none":
        per_hour = Price(0.0, "serving mode none", None)
        per_30_days = Price(0.0, "serving mode none", None)
    elif serving.mode == "on_demand":
        per_hour = per_30_days = None
        notes.append("On-demand serving is billed per inference token; estimate it from your traffic.")
    else:
        serving_price = prices.pt_per_hour(serving.commitment)
        per_hour = _scaled(serving_price, serving.model_units)
        per_30_days = _scaled(serving_price, serving.model_units * HOURS_PER_30_DAYS)
        months = COMMITMENT_MONTHS[serving.commitment]
        if months:
            commitment_total = _scaled(serving_price, serving.model_units * HOURS_PER_30_DAYS * months)
            notes.append(
                f"A {serving.commitment} commitment cannot be deleted before its term ends and renews by itself."
            )
        else:
            notes.append("No-commitment Provisioned Throughput bills every hour until it is deleted.")

    return CostEstimate(
        model_id=model.model_id,
        model_name=model.name,
        customization_type=ft.customization_type,
        training_tokens=training_tokens,
        token_method=token_method,
        epochs=epochs,
        epochs_note=epochs_note,
        training_price=training_price,
        training=training,
        storage=prices.storage_per_month,
        serving_mode=serving.mode,
        model_units=serving.model_units,
        commitment=serving.commitment,
        serving_price=serving_price,
        serving_per_hour=per_hour,
        serving_per_30_days=per_30_days,
        commitment_total=commitment_total,
        notes=tuple(notes),
    )


def training_cost_line(model: ModelEntry, training_tokens: int) -> str:
    """One line for `validate`: training on these tokens at the catalog's default epochs and prices."""
    epochs, note = _epochs({}, model)
    if epochs is None:
        return f"estimated training cost: unknown ({note})"
    price = prices_for(model, {}).training_per_1k_tokens
    total = _scaled(price, training_tokens * epochs / 1000)
    return (
        f"estimated training cost: {total.render()} for {training_tokens:,} tokens x {epochs} epochs "
        f"({note}); price per 1k tokens {_with_source(price)}"
    )


def _epochs(hyperparameters: Mapping[str, HyperparameterValue], model: ModelEntry) -> tuple[int | None, str]:
    spec = model.hyperparameter("epochCount")
    if spec is None:
        return 1, f"assumed one pass: {model.name} takes no epochCount"
    value = hyperparameters.get("epochCount", spec.default)
    if "epochCount" in hyperparameters:
        origin = "epochCount from the configuration"
    else:
        origin = "epochCount default of the catalog"
    if value is None:
        return None, "no epochCount given and no default documented"
    if isinstance(value, int) and not isinstance(value, bool):
        return value, origin
    if isinstance(value, str):
        return None, f"epochCount {value!r} is chosen by Bedrock"
    return None, f"epochCount {value!r} is not a whole number"


def _scaled(price: Price, factor: float) -> Price:
    value = None if price.value is None else price.value * factor
    return Price(value, price.source, price.as_of, price.unverified)


def _with_source(price: Price) -> str:
    as_of = f", as of {price.as_of}" if price.as_of and price.as_of not in price.source else ""
    return f"{price.render()}  [source: {price.source}{as_of}]"
