"""The price list: every figure sourced and dated, every catalog model priced where it is customized,
overrides winning, and how prices render."""

from __future__ import annotations

import re

import pytest

from finetune.core.catalog import CATALOG, ModelEntry
from finetune.core.prices import (
    IMAGES,
    NOT_FOUND,
    OVERRIDE,
    PRICE_FIELDS,
    PRICE_LIST,
    TOKENS,
    Price,
    Source,
    base_inference,
    format_usd,
    list_prices,
    prices_for,
)

ENTRIES = pytest.mark.parametrize("model", CATALOG, ids=[m.model_id for m in CATALOG])
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
HAIKU_ALIAS = "anthropic.claude-3-haiku-20240307-v1:0"
ISO_DATE = re.compile(r"^20\d\d-\d\d-\d\d$")


def test_every_figure_names_a_public_source_and_its_date() -> None:
    for (model_id, region), prices in PRICE_LIST.items():
        for name in PRICE_FIELDS:
            price = prices.get(name)
            where = f"{model_id} {region} {name}"
            assert price.value is None or price.value > 0, f"{where}: unknown is None, never 0"
            assert price.source.title, where
            assert price.source.url.startswith("https://"), where
            assert ISO_DATE.match(price.source.as_of), where
            if price.value is None and price.offered:
                assert price.source == NOT_FOUND, f"{where}: an unknown figure says it was not found"


@ENTRIES
def test_every_model_is_priced_in_every_region_it_is_customized(model: ModelEntry) -> None:
    for region in model.regions:
        prices = list_prices(model.identifiers, region)
        assert (model.model_id, region) in PRICE_LIST or any(
            (alias, region) in PRICE_LIST for alias in model.aliases
        )
        assert prices.training.known and prices.storage_per_month.known, model.model_id


@ENTRIES
def test_on_demand_prices_exist_exactly_where_the_catalog_serves_on_demand(model: ModelEntry) -> None:
    for region in model.regions:
        prices = list_prices(model.identifiers, region)
        offered = region in model.serving.on_demand_regions
        assert prices.on_demand_input_per_1k_tokens.offered == offered, f"{model.model_id} {region}"
        assert prices.on_demand_output_per_1k_tokens.offered == offered


def test_image_models_train_per_image_and_text_models_per_token() -> None:
    assert list_prices(["amazon.titan-image-generator-v2:0"], "us-east-1").training_unit == IMAGES
    assert list_prices(["amazon.titan-embed-image-v1:0"], "us-west-2").training_unit == IMAGES
    nova = list_prices(["amazon.nova-micro-v1:0:128k"], "us-east-1")
    assert nova.training_unit == TOKENS and nova.training_field == "training_per_1k_tokens"
    assert not nova.training_per_image.offered and nova.training_per_image.render() == "not offered"


def test_figures_from_the_price_list() -> None:
    """Spot checks against the sources (the Price List API copy of 2025-10-21, the 2026 page)."""
    haiku = list_prices([HAIKU], "us-west-2")
    assert haiku.storage_per_month.value == 20.00  # the Marketplace SKU, not the generic $1.95
    assert (haiku.pt_no_commitment_per_hour.value, haiku.pt_six_months_per_hour.value) == (132.00, 66.00)
    assert list_prices([HAIKU], "us-east-1") == haiku, "no regional difference was found"
    llama = list_prices(["meta.llama3-1-8b-instruct-v1:0:128k"], "us-west-2")
    assert llama.training_per_1k_tokens.value == 0.00149  # "$1.49 to train 1M tokens"
    assert llama.training_per_1k_tokens.source.url == "https://aws.amazon.com/bedrock/pricing/"


def test_a_figure_nobody_publishes_is_unknown_and_a_secondary_one_unverified() -> None:
    llama_33 = list_prices(["meta.llama3-3-70b-instruct-v1:0:128k"], "us-west-2")
    assert llama_33.pt_no_commitment_per_hour.value is None and llama_33.pt_no_commitment_per_hour.offered
    assert llama_33.pt_no_commitment_per_hour.render() == "unknown"
    nova_2 = list_prices(["amazon.nova-2-lite-v1:0:256k"], "us-east-1")
    assert nova_2.training_per_1k_tokens.unverified
    assert nova_2.training_per_1k_tokens.render() == "~$0.00378 (unverified)"
    assert nova_2.pt_six_months_per_hour.value is None


def test_a_region_nobody_priced_has_only_unknown_prices_in_the_models_unit() -> None:
    unpriced = list_prices([HAIKU], "eu-central-1")
    assert unpriced.training_unit == TOKENS
    assert all(unpriced.get(name).value is None for name in PRICE_FIELDS)
    assert unpriced.training.render() == "unknown" and unpriced.storage_per_month.render() == "unknown"
    assert list_prices(["amazon.titan-embed-image-v1:0"], "eu-central-1").training_unit == IMAGES
    with pytest.raises(KeyError, match="no price field"):
        unpriced.get("per_token")


def test_an_override_wins_and_says_so() -> None:
    listed = list_prices([HAIKU], "us-west-2")
    prices = prices_for([HAIKU, HAIKU_ALIAS], "us-west-2", {HAIKU: {"training_per_1k_tokens": 0.008}})
    assert prices.training_per_1k_tokens == Price(0.008, OVERRIDE)
    assert not prices.training_per_1k_tokens.unverified
    assert prices.storage_per_month == listed.storage_per_month
    assert (
        prices_for([HAIKU], "us-west-2", {"amazon.nova-micro-v1:0:128k": {"storage_per_month": 9.0}})
        == listed
    )


def test_an_override_fills_an_unknown_region_and_the_model_id_wins_over_an_alias() -> None:
    overrides = {
        HAIKU_ALIAS: {"storage_per_month": 1.0, "pt_one_month_per_hour": 7.0},
        HAIKU: {"storage_per_month": 3.0},
    }
    prices = prices_for([HAIKU, HAIKU_ALIAS], "eu-central-1", overrides)
    assert prices.storage_per_month.value == 3.0
    assert prices.pt_per_hour("OneMonth").value == 7.0
    assert prices.training_per_1k_tokens.value is None


def test_rendering() -> None:
    source = Source("a page", "https://example.com", "2026-01-01", official=True)
    secondary = Source("a blog", "https://example.com", "2026-01-01", official=False)
    assert Price(None, source).render() == "unknown"
    assert Price(1.95, secondary).render("/month") == "~$1.95/month (unverified)"
    assert Price(1234.5, source).render() == "$1,234.50"
    assert Price(2.0, source).scaled(1.5) == Price(3.0, source)
    assert Price(None, source).scaled(2).value is None
    assert source.cite() == "a page, https://example.com, as of 2026-01-01"
    assert OVERRIDE.cite() == "cdk.json pricing override"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0.00"),
        (0.5, "$0.50"),
        (0.012, "$0.012"),
        (0.000035, "$0.000035"),
        (0.1234567, "$0.1235"),
        (1.5, "$1.50"),
        (95_040, "$95,040.00"),
    ],
)
def test_format_usd_never_rounds_a_rate_away(value: float, text: str) -> None:
    assert format_usd(value) == text


def test_base_inference_accepts_profiles_and_customization_ids() -> None:
    pro = base_inference("amazon.nova-pro-v1:0")
    assert pro.input_per_1k_tokens.value == pytest.approx(0.0008)
    assert pro.output_per_1k_tokens.value == pytest.approx(0.0032)
    assert base_inference("us.amazon.nova-pro-v1:0") == pro
    assert base_inference("amazon.nova-pro-v1:0:300k") == pro
    unknown = base_inference("mistral.mistral-large-2402-v1:0")
    assert unknown.input_per_1k_tokens.value is None and unknown.input_per_1k_tokens.offered
