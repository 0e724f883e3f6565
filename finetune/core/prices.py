"""List prices of Bedrock model customization, per model and region, each with its source and date.

`list_prices(identifiers, region)` gives one model's prices in one region; `prices_for(...)` applies an
environment's cdk.json `pricing` overrides on top (they win, and say so). `base_inference(model_id)`
gives the on-demand price of a base model: what a distillation teacher, an evaluation judge or a base
model's responses cost. Nothing here imports the model catalog: prices are keyed by the same model ids.

Where the figures come from (researched offline, 2026-12, from stored copies of AWS's own data):
- `PRICE_LIST_2025`: the AWS Price List API (service AmazonBedrock), read in a copy generated on
  2025-10-21 by AWS's own sample price collector (aws-samples/sample-bedrock-migration-and-
  modernization-tools). Official data.
- `PRICING_PAGE_2026`: the text of https://aws.amazon.com/bedrock/pricing/ as captured on 2026-07-24 by a
  daily archive of that page. Official text.
- `PRICING_PAGE_2025`: the same page in its Korean locale (US East, N. Virginia), captured 2025-02-28.
  Official text; the Titan and Cohere tables no longer appear on the 2026 page.
- `SECONDARY_2026`: a third-party project's cost notes quoting the Price List API on 2026-08-02: the only
  source found for Nova 2 Lite. Marked unverified (rendered `~$x (unverified)`).

Decisions:
- A figure nobody publishes stays unknown (`value` None, rendered "unknown"), never 0; a kind of price a
  model does not have (on-demand serving of a Claude custom model) is "not offered", which is a fact, not
  a gap. Either way a budget check that needs the figure fails and names the `pricing` override to set.
- Per region: every model is listed for each region where a source showed its prices; no price differed
  between us-east-1 and us-west-2 wherever both were visible. A region without an entry has unknown
  prices (set them with an override): a figure is never carried over to a region nobody priced.
- Custom-model Provisioned Throughput uses the price list's custom-model rows, which for Claude 3 Haiku
  and Titan Image Generator v2 are higher than the base model's (the user guide says they are the
  same; AWS's own price list says otherwise, and the list is what bills).
- Distillation teachers are billed at their base on-demand rate (pricing page); `base_inference` holds
  the standard-tier rates of the teachers and judges this product uses.
- Training of the two Titan image models is billed per image seen, not per token.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace

PRICING_PAGE_URL = "https://aws.amazon.com/bedrock/pricing/"
RESEARCHED = "2026-12-02"


@dataclass(frozen=True)
class Source:
    """Where a figure was read: a title, a public URL to check it at, its as-of date."""

    title: str
    url: str
    as_of: str
    official: bool  # AWS's own data or page text (False: a secondary source)

    def cite(self) -> str:
        return f"{self.title}, {self.url}, as of {self.as_of}" if self.as_of else f"{self.title}"


PRICE_LIST_2025 = Source(
    "AWS Price List API, service AmazonBedrock",
    "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonBedrock/current/index.json",
    "2025-10-21",
    official=True,
)
PRICING_PAGE_2026 = Source("Amazon Bedrock pricing page", PRICING_PAGE_URL, "2026-07-24", official=True)
PRICING_PAGE_2025 = Source(
    "Amazon Bedrock pricing page (ko locale, US East N. Virginia)",
    "https://aws.amazon.com/ko/bedrock/pricing/",
    "2025-02-28",
    official=True,
)
SECONDARY_2026 = Source(
    "third-party notes quoting the AWS Price List API (verify on the pricing page)",
    PRICING_PAGE_URL,
    "2026-08-02",
    official=False,
)
NOT_FOUND = Source(
    "not published in any source found (pricing page, price list, launch posts)",
    PRICING_PAGE_URL,
    RESEARCHED,
    official=False,
)
NOT_OFFERED = Source(
    "not offered for this model (Bedrock user guide: on-demand deployment of custom models)",
    "https://docs.aws.amazon.com/bedrock/latest/userguide/deploy-custom-model-on-demand.html",
    RESEARCHED,
    official=True,
)
OVERRIDE = Source("cdk.json pricing override", "cdk.json", "", official=True)


@dataclass(frozen=True)
class Price:
    """One price in USD. `value` None: unknown, or not offered (`offered` False)."""

    value: float | None
    source: Source
    offered: bool = True

    @property
    def known(self) -> bool:
        return self.value is not None

    @property
    def unverified(self) -> bool:
        return self.value is not None and not self.source.official

    def render(self, suffix: str = "") -> str:
        """`$1.95/month`, `~$1.95/month (unverified)`, `unknown` or `not offered`."""
        if not self.offered:
            return "not offered"
        if self.value is None:
            return "unknown"
        amount = format_usd(self.value)
        return f"~{amount}{suffix} (unverified)" if self.unverified else f"{amount}{suffix}"

    def scaled(self, factor: float) -> Price:
        """This price times `factor` (a quantity), with the same source."""
        return replace(self, value=None if self.value is None else self.value * factor)


def format_usd(value: float) -> str:
    """Dollars with cents (`$1,234.50`); below a dollar up to four significant digits and at least
    cents (`$0.012`, `$0.000035`, `$0.50`), so a per-token rate is never rounded away."""
    if value == 0 or abs(value) >= 1:
        return f"${value:,.2f}"
    decimals = max(2, 3 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def unknown() -> Price:
    return Price(None, NOT_FOUND)


def not_offered() -> Price:
    return Price(None, NOT_OFFERED, offered=False)


TOKENS = "1k tokens"
IMAGES = "image"


@dataclass(frozen=True)
class Prices:
    """One model's prices in one region. Field names are the cdk.json `pricing` override keys."""

    training_per_1k_tokens: Price
    training_per_image: Price
    storage_per_month: Price
    pt_no_commitment_per_hour: Price
    pt_one_month_per_hour: Price
    pt_six_months_per_hour: Price
    on_demand_input_per_1k_tokens: Price
    on_demand_output_per_1k_tokens: Price

    @property
    def training_unit(self) -> str:
        """What training is billed by: TOKENS (per 1,000) or IMAGES (per image seen)."""
        return IMAGES if self.training_per_image.offered else TOKENS

    @property
    def training(self) -> Price:
        return self.training_per_image if self.training_unit == IMAGES else self.training_per_1k_tokens

    @property
    def training_field(self) -> str:
        return "training_per_image" if self.training_unit == IMAGES else "training_per_1k_tokens"

    def pt_per_hour(self, commitment: str) -> Price:
        """The PT price per model unit and hour for a commitment: none | OneMonth | SixMonths."""
        return self.get(PT_FIELDS[commitment])

    def get(self, field_name: str) -> Price:
        if field_name not in PRICE_FIELDS:
            raise KeyError(f"no price field {field_name!r}; known: {', '.join(PRICE_FIELDS)}")
        price: Price = getattr(self, field_name)
        return price


PRICE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Prices))
PT_FIELDS = {
    "none": "pt_no_commitment_per_hour",
    "OneMonth": "pt_one_month_per_hour",
    "SixMonths": "pt_six_months_per_hour",
}
UNKNOWN_PRICES = Prices(**{name: unknown() for name in PRICE_FIELDS})
# Billed per image seen, whatever the region (pricing page): their unknown rows say so too.
PER_IMAGE_MODELS = frozenset({"amazon.titan-image-generator-v2:0", "amazon.titan-embed-image-v1:0"})
UNKNOWN_IMAGE_PRICES = replace(UNKNOWN_PRICES, training_per_1k_tokens=Price(None, NOT_FOUND, offered=False))
UNKNOWN_TOKEN_PRICES = replace(UNKNOWN_PRICES, training_per_image=Price(None, NOT_FOUND, offered=False))


def _usd(value: float, source: Source) -> Price:
    return Price(value, source)


def _prices(
    source: Source,
    *,
    training: float | None,
    storage: float | None,
    pt: tuple[float | None, float | None, float | None] | None,
    on_demand: tuple[float, float] | None = None,
    per_image: bool = False,
) -> Prices:
    """A table row: `training` per 1k tokens (or per image seen), storage per month, PT per model unit
    and hour (no commitment, one month, six months; None: PT is not offered), custom on-demand
    inference per 1k input and output tokens (None: not offered). A None figure is unknown."""

    def price(value: float | None) -> Price:
        return unknown() if value is None else _usd(value, source)

    trained = price(training)
    pt_prices = [not_offered()] * 3 if pt is None else [price(value) for value in pt]
    return Prices(
        training_per_1k_tokens=not_offered() if per_image else trained,
        training_per_image=trained if per_image else not_offered(),
        storage_per_month=price(storage),
        pt_no_commitment_per_hour=pt_prices[0],
        pt_one_month_per_hour=pt_prices[1],
        pt_six_months_per_hour=pt_prices[2],
        on_demand_input_per_1k_tokens=price(on_demand[0]) if on_demand else not_offered(),
        on_demand_output_per_1k_tokens=price(on_demand[1]) if on_demand else not_offered(),
    )


US_EAST_1 = "us-east-1"
US_WEST_2 = "us-west-2"
BOTH = (US_EAST_1, US_WEST_2)

NOVA_PT = (60.50, 55.00, 30.25)
LLAMA_31_PT = (24.00, 21.18, 13.08)
LLAMA_32_PT = (23.00, 20.30, 12.54)

# model id (with the context suffix, as the catalog writes it) -> (regions, prices).
_TABLE: tuple[tuple[str, tuple[str, ...], Prices], ...] = (
    (
        "anthropic.claude-3-haiku-20240307-v1:0:200k",
        BOTH,
        _prices(PRICE_LIST_2025, training=0.012, storage=20.00, pt=(132.00, 120.00, 66.00)),
    ),
    (
        "amazon.nova-micro-v1:0:128k",
        (US_EAST_1,),
        _prices(PRICE_LIST_2025, training=0.001, storage=1.95, pt=NOVA_PT, on_demand=(0.000035, 0.00014)),
    ),
    (
        "amazon.nova-lite-v1:0:300k",
        (US_EAST_1,),
        _prices(PRICE_LIST_2025, training=0.002, storage=1.95, pt=NOVA_PT, on_demand=(0.00006, 0.00024)),
    ),
    (
        "amazon.nova-pro-v1:0:300k",
        (US_EAST_1,),
        _prices(PRICE_LIST_2025, training=0.008, storage=1.95, pt=NOVA_PT, on_demand=(0.0008, 0.0032)),
    ),
    (
        # Fine-tuning (SFT) rate; the six-month PT rate was not found.
        "amazon.nova-2-lite-v1:0:256k",
        (US_EAST_1,),
        _prices(
            SECONDARY_2026,
            training=0.00378,
            storage=1.95,
            pt=(60.50, 55.00, None),
            on_demand=(0.0003, 0.0025),
        ),
    ),
    (
        "meta.llama3-1-8b-instruct-v1:0:128k",
        (US_WEST_2,),
        _prices(PRICING_PAGE_2026, training=0.00149, storage=1.95, pt=LLAMA_31_PT),
    ),
    (
        "meta.llama3-1-70b-instruct-v1:0:128k",
        (US_WEST_2,),
        _prices(PRICING_PAGE_2026, training=0.00799, storage=1.95, pt=LLAMA_31_PT),
    ),
    (
        "meta.llama3-2-1b-instruct-v1:0:128k",
        (US_WEST_2,),
        _prices(PRICING_PAGE_2026, training=0.0005, storage=1.95, pt=LLAMA_32_PT),
    ),
    (
        "meta.llama3-2-3b-instruct-v1:0:128k",
        (US_WEST_2,),
        _prices(PRICING_PAGE_2026, training=0.0011, storage=1.95, pt=LLAMA_32_PT),
    ),
    (
        "meta.llama3-2-11b-instruct-v1:0:128k",
        (US_WEST_2,),
        _prices(PRICING_PAGE_2026, training=0.0035, storage=1.95, pt=LLAMA_32_PT),
    ),
    (
        "meta.llama3-2-90b-instruct-v1:0:128k",
        (US_WEST_2,),
        _prices(PRICING_PAGE_2026, training=0.0079, storage=1.95, pt=(30.00, 26.48, 16.35)),
    ),
    (
        # No PT price exists in the price list or on the page: custom Llama 3.3 is served on demand.
        "meta.llama3-3-70b-instruct-v1:0:128k",
        (US_WEST_2,),
        _prices(
            PRICE_LIST_2025,
            training=0.0033,
            storage=1.95,
            pt=(None, None, None),
            on_demand=(0.00072, 0.00072),
        ),
    ),
    (
        "amazon.titan-text-express-v1:0:8k",
        BOTH,
        _prices(PRICING_PAGE_2025, training=0.008, storage=1.95, pt=(20.50, 18.40, 14.80)),
    ),
    (
        "amazon.titan-text-lite-v1:0:4k",
        BOTH,
        _prices(PRICING_PAGE_2025, training=0.0004, storage=1.95, pt=(7.10, 6.40, 5.10)),
    ),
    (
        "amazon.titan-text-premier-v1:0:32k",
        (US_EAST_1,),
        _prices(PRICE_LIST_2025, training=0.028, storage=1.95, pt=(32.25, 27.95, 16.38)),
    ),
    (
        "amazon.titan-image-generator-v2:0",
        BOTH,
        _prices(PRICE_LIST_2025, training=0.005, storage=1.95, pt=(23.40, 21.00, 16.85), per_image=True),
    ),
    (
        "amazon.titan-embed-image-v1:0",
        BOTH,
        _prices(PRICING_PAGE_2025, training=0.0002, storage=1.95, pt=(9.38, 8.45, 6.75), per_image=True),
    ),
    (
        "cohere.command-light-text-v14:7:4k",
        (US_EAST_1,),
        _prices(PRICING_PAGE_2026, training=0.001, storage=1.95, pt=(8.56, 6.85, 4.11)),
    ),
)

PRICE_LIST: Mapping[tuple[str, str], Prices] = {
    (model_id, region): prices for model_id, regions, prices in _TABLE for region in regions
}


def list_prices(identifiers: Iterable[str], region: str) -> Prices:
    """The list prices of the model known by `identifiers` (its id, then aliases) in `region`;
    every figure unknown when no source priced it there."""
    ordered = list(identifiers)
    for identifier in ordered:
        found = PRICE_LIST.get((identifier, region))
        if found is not None:
            return found
    return UNKNOWN_IMAGE_PRICES if PER_IMAGE_MODELS & set(ordered) else UNKNOWN_TOKEN_PRICES


def prices_for(
    identifiers: Iterable[str], region: str, pricing_overrides: Mapping[str, Mapping[str, float]]
) -> Prices:
    """The list prices with an environment's `pricing` overrides applied ({model id: {field: USD}}).

    An override under an alias applies too; one under the model id wins over an alias.
    """
    ordered = list(identifiers)
    merged: dict[str, float] = {}
    for identifier in reversed(ordered):
        merged.update(pricing_overrides.get(identifier, {}))
    changes = {name: Price(float(value), OVERRIDE) for name, value in merged.items() if name in PRICE_FIELDS}
    return replace(list_prices(ordered, region), **changes)


@dataclass(frozen=True)
class InferencePrice:
    """A base model's on-demand price per 1k input and output tokens (standard tier)."""

    input_per_1k_tokens: Price
    output_per_1k_tokens: Price


def _inference(source: Source, per_million_in: float, per_million_out: float) -> InferencePrice:
    return InferencePrice(_usd(per_million_in / 1000, source), _usd(per_million_out / 1000, source))


# Foundation-model ids without the context suffix; the pricing page quotes per 1M tokens.
_BASE_INFERENCE: Mapping[str, InferencePrice] = {
    "amazon.nova-micro-v1:0": _inference(PRICING_PAGE_2026, 0.035, 0.14),
    "amazon.nova-lite-v1:0": _inference(PRICING_PAGE_2026, 0.06, 0.24),
    "amazon.nova-pro-v1:0": _inference(PRICING_PAGE_2026, 0.80, 3.20),
    "amazon.nova-premier-v1:0": _inference(PRICING_PAGE_2026, 2.50, 12.50),
    "amazon.nova-2-lite-v1:0": _inference(PRICING_PAGE_2026, 0.33, 2.75),
    "anthropic.claude-3-haiku-20240307-v1:0": _inference(PRICING_PAGE_2026, 0.25, 1.25),
    "meta.llama3-1-8b-instruct-v1:0": _inference(PRICING_PAGE_2026, 0.22, 0.22),
    "meta.llama3-1-70b-instruct-v1:0": _inference(PRICING_PAGE_2026, 0.72, 0.72),
    "meta.llama3-1-405b-instruct-v1:0": _inference(PRICING_PAGE_2026, 2.40, 2.40),
    "meta.llama3-2-1b-instruct-v1:0": _inference(PRICING_PAGE_2026, 0.10, 0.10),
    "meta.llama3-2-3b-instruct-v1:0": _inference(PRICING_PAGE_2026, 0.15, 0.15),
    "meta.llama3-2-11b-instruct-v1:0": _inference(PRICING_PAGE_2026, 0.16, 0.16),
    "meta.llama3-2-90b-instruct-v1:0": _inference(PRICING_PAGE_2026, 0.72, 0.72),
    "meta.llama3-3-70b-instruct-v1:0": _inference(PRICING_PAGE_2026, 0.72, 0.72),
}
CROSS_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.")


def base_inference(model_id: str) -> InferencePrice:
    """The on-demand price of a base model (a foundation-model id, an inference-profile id such as
    `us.amazon.nova-pro-v1:0`, or a customizable id with its context suffix); unknown if unlisted."""
    plain = model_id
    for prefix in CROSS_REGION_PREFIXES:
        plain = plain.removeprefix(prefix)
    found = _BASE_INFERENCE.get(plain) or _BASE_INFERENCE.get(plain.rsplit(":", 1)[0])
    return found or InferencePrice(unknown(), unknown())
