"""The model catalog: consistency of every entry, the documented facts, look-ups and prices."""

from __future__ import annotations

import math
import re

import pytest

from finetune.core import catalog
from finetune.core.catalog import (
    CATALOG,
    CUSTOMIZATION_TYPES,
    DISTILLATION,
    LIFECYCLE_COHERE_DEPRECATED,
    LIFECYCLE_CURRENT,
    LIFECYCLE_DROPPED,
    ModelEntry,
    find_model,
    format_number,
    suggest_models,
)
from finetune.core.formats import DataFormat

ENTRIES = pytest.mark.parametrize("model", CATALOG, ids=[m.model_id for m in CATALOG])

# Reference section 5: every customizable model it names.
SECTION_5_IDS = (
    "anthropic.claude-3-haiku-20240307-v1:0:200k",
    "amazon.nova-micro-v1:0:128k",
    "amazon.nova-lite-v1:0:300k",
    "amazon.nova-pro-v1:0:300k",
    "amazon.nova-2-lite-v1:0:256k",
    "meta.llama3-1-8b-instruct-v1:0:128k",
    "meta.llama3-1-70b-instruct-v1:0:128k",
    "meta.llama3-2-1b-instruct-v1:0:128k",
    "meta.llama3-2-3b-instruct-v1:0:128k",
    "meta.llama3-2-11b-instruct-v1:0:128k",
    "meta.llama3-2-90b-instruct-v1:0:128k",
    "meta.llama3-3-70b-instruct-v1:0:128k",
    "amazon.titan-text-express-v1:0:8k",
    "amazon.titan-text-lite-v1:0:4k",
    "amazon.titan-text-premier-v1:0:32k",
    "amazon.titan-image-generator-v2:0",
    "amazon.titan-embed-image-v1:0",
    "cohere.command-light-text-v14:7:4k",
)


def model(model_id: str) -> ModelEntry:
    entry = find_model(model_id)
    assert entry is not None, model_id
    return entry


# ---------------------------------------------------------------------------------------------
# Consistency of every entry
# ---------------------------------------------------------------------------------------------


def test_catalog_covers_every_model_of_the_reference() -> None:
    assert {m.model_id for m in CATALOG} == set(SECTION_5_IDS)


def test_identifiers_are_unique_across_the_catalog() -> None:
    identifiers = [identifier for m in CATALOG for identifier in m.identifiers]
    assert len(identifiers) == len(set(identifiers))


@ENTRIES
def test_hyperparameter_defaults_lie_within_their_ranges(model: ModelEntry) -> None:
    keys = [spec.key for spec in model.hyperparameters]
    assert len(keys) == len(set(keys)), "a key is listed twice"
    for spec in model.hyperparameters:
        assert spec.minimum <= spec.maximum, spec.key
        assert spec.kind in ("int", "float")
        if spec.kind == "int":
            assert isinstance(spec.minimum, int) and isinstance(spec.maximum, int), spec.key
        if spec.required:
            assert spec.default is None, f"{spec.key}: a required key has no default"
        if isinstance(spec.default, str):
            assert spec.default in spec.special_values, spec.key
        elif spec.default is not None:
            assert not isinstance(spec.default, bool)
            assert spec.in_range(spec.default), f"{spec.key} default {spec.default} outside its range"
            if spec.kind == "int":
                assert isinstance(spec.default, int), spec.key


@ENTRIES
def test_every_customization_type_has_regions_and_known_formats(model: ModelEntry) -> None:
    assert model.customizations, "a customizable model supports at least one type"
    for customization in model.customizations:
        assert customization.type in CUSTOMIZATION_TYPES
        assert customization.regions, f"{customization.type} lists no region"
        assert all(re.fullmatch(r"[a-z]{2}-[a-z]+-\d", region) for region in customization.regions)
        assert isinstance(customization.limits.data_format, DataFormat)
        assert customization.source and customization.limits_source
    assert len(model.customization_types) == len(set(model.customization_types))


@ENTRIES
def test_dataset_limits_are_ordered(model: ModelEntry) -> None:
    for customization in model.customizations:
        limits = customization.limits
        if limits.min_records is not None and limits.max_records is not None:
            assert 0 < limits.min_records <= limits.max_records
        if limits.caption_min_chars is not None and limits.caption_max_chars is not None:
            assert 0 <= limits.caption_min_chars <= limits.caption_max_chars
        for token_limit in limits.token_limits:
            assert token_limit.max_tokens > 0
            if token_limit.batch_size_max is not None:
                assert token_limit.batch_size_min <= token_limit.batch_size_max
        if not limits.validation_allowed:
            assert limits.validation_max_records is None and limits.validation_max_file_bytes is None
        for size in (limits.max_file_bytes, limits.validation_max_file_bytes):
            assert size is None or size > 0


@ENTRIES
def test_teachers_only_on_distillation(model: ModelEntry) -> None:
    for customization in model.customizations:
        if customization.type == DISTILLATION:
            assert customization.teachers, "a distillation student names its allowed teachers"
            assert model.model_id not in customization.teachers
            assert all(teacher not in model.identifiers for teacher in customization.teachers)
        else:
            assert customization.teachers == (), f"teachers listed on {customization.type}"


@ENTRIES
def test_identity_serving_and_lifecycle_are_sourced(model: ModelEntry) -> None:
    assert model.provider and model.name and model.license
    assert model.input_modalities and model.output_modalities
    assert model.lifecycle in (LIFECYCLE_CURRENT, LIFECYCLE_DROPPED, LIFECYCLE_COHERE_DEPRECATED)
    assert model.serving.provisioned, "Provisioned Throughput is documented for every custom model"
    assert model.identity_source and model.hyperparameters_source and model.lifecycle_source
    if model.context_window is not None:
        suffix = model.model_id.rsplit(":", 1)[1]
        assert suffix == f"{model.context_window // 1000}k"


def test_on_demand_only_where_the_reference_documents_it() -> None:
    on_demand = {m.name: m.serving.on_demand_regions for m in CATALOG if m.serving.on_demand}
    assert on_demand == {
        "Nova Micro": ("us-east-1",),
        "Nova Lite": ("us-east-1",),
        "Nova Pro": ("us-east-1",),
        "Nova 2 Lite": ("us-east-1",),
        "Llama 3.3 70B Instruct": ("us-west-2",),
    }


def test_dropped_models_are_titan_text_and_cohere() -> None:
    dropped = {m.name for m in CATALOG if LIFECYCLE_DROPPED in m.lifecycle}
    assert dropped == {
        "Titan Text G1 - Express",
        "Titan Text G1 - Lite",
        "Titan Text G1 - Premier",
        "Command Light",
    }


def test_cohere_fine_tuning_is_deprecated_since_2025_09_15_with_cohere_as_the_source() -> None:
    cohere = model("cohere.command-light-text-v14:7:4k")
    assert cohere.lifecycle == LIFECYCLE_COHERE_DEPRECATED
    assert cohere.lifecycle.startswith("fine-tuning deprecated by Cohere on 2025-09-15")
    assert (
        "https://docs.cohere.com/docs/fine-tuning-cohere-models-on-amazon-bedrock" in cohere.lifecycle_source
    )
    assert [m.name for m in CATALOG if "deprecated" in m.lifecycle] == ["Command Light"]


def test_titan_text_premier_and_cohere_command_have_their_documented_limits() -> None:
    premier = model("amazon.titan-text-premier-v1:0:32k").dataset_limits("FINE_TUNING")
    assert premier is not None and premier.max_tokens_for(1) == 4_096
    assert (premier.max_file_bytes, premier.validation_max_file_bytes) == (1000**3, 100 * 1000**2)
    cohere_entry = model("cohere.command-light-text-v14:7:4k")
    cohere = cohere_entry.dataset_limits("FINE_TUNING")
    assert cohere is not None and cohere.max_tokens_for(8) == 4_096 and cohere.completion_max_tokens == 2_048
    assert (cohere.min_records, cohere.max_records, cohere.validation_max_records) == (32, 10_000, 1_000)
    for entry in (model("amazon.titan-text-premier-v1:0:32k"), cohere_entry):
        customization = entry.customization("FINE_TUNING")
        assert customization is not None
        assert "Model requirements for training and validation datasets" in customization.limits_source
        assert not any("No dataset limits" in note for note in entry.notes)


def test_continued_pre_training_only_for_titan_text_express_and_lite() -> None:
    cpt = {m.model_id for m in CATALOG if "CONTINUED_PRE_TRAINING" in m.customization_types}
    assert cpt == {"amazon.titan-text-express-v1:0:8k", "amazon.titan-text-lite-v1:0:4k"}


# ---------------------------------------------------------------------------------------------
# Documented facts (reference sections 5 and 6)
# ---------------------------------------------------------------------------------------------


def test_claude_3_haiku_facts() -> None:
    haiku = model("anthropic.claude-3-haiku-20240307-v1:0:200k")
    assert haiku.customization_types == ("FINE_TUNING",)
    assert haiku.regions_for("FINE_TUNING") == ("us-west-2",)
    batch = haiku.hyperparameter("batchSize")
    assert batch is not None
    assert (batch.kind, batch.minimum, batch.maximum, batch.default) == ("int", 4, 256, 32)
    multiplier = haiku.hyperparameter("learningRateMultiplier")
    assert multiplier is not None and (multiplier.minimum, multiplier.maximum) == (0.1, 2.0)
    limits = haiku.dataset_limits("FINE_TUNING")
    assert limits is not None
    assert limits.data_format is DataFormat.CLAUDE_MESSAGES
    assert (limits.min_records, limits.max_records, limits.validation_max_records) == (32, 10_000, 1_000)
    assert limits.max_tokens_for(None) == 32_000
    assert limits.max_file_bytes == 10 * 1000**3


def test_nova_2_lite_is_offered_for_supervised_fine_tuning_as_aws_samples_use_it() -> None:
    nova_2 = model("amazon.nova-2-lite-v1:0:256k")
    assert find_model("amazon.nova-2-lite-v1:0") is nova_2
    assert nova_2.customization_types == ("FINE_TUNING",)
    assert nova_2.regions_for("FINE_TUNING") == ("us-east-1",) and nova_2.context_window == 256_000
    assert nova_2.hyperparameter_keys == ("epochCount", "batchSize", "learningRate")
    assert "not documented for Bedrock" in nova_2.hyperparameters_source
    limits = nova_2.dataset_limits("FINE_TUNING")
    assert limits is not None and limits.data_format is DataFormat.CONVERSE
    assert (limits.min_records, limits.max_records, limits.validation_allowed) == (200, 20_000, False)
    assert (limits.image_formats, limits.video_formats) == (("png", "jpeg", "gif"), ("mov", "mkv", "mp4"))
    assert limits.token_limits == ()  # not documented for Bedrock
    assert any("Not documented for Bedrock" in note for note in nova_2.notes)


def test_reinforcement_fine_tuning_is_not_offered() -> None:
    assert "REINFORCEMENT_FINE_TUNING" not in CUSTOMIZATION_TYPES
    assert "REINFORCEMENT_FINE_TUNING" not in catalog.TYPE_ABBREVIATIONS
    assert all("REINFORCEMENT_FINE_TUNING" not in m.customization_types for m in CATALOG)
    assert "Reinforcement fine-tuning" in (catalog.__doc__ or "") and "finding 54" in (catalog.__doc__ or "")


def test_claude_3_haiku_validation_sets_take_32_to_1000_records() -> None:
    haiku = model("anthropic.claude-3-haiku-20240307-v1:0:200k")
    limits = haiku.dataset_limits("FINE_TUNING")
    assert limits is not None
    assert (limits.validation_min_records, limits.validation_max_records) == (32, 1_000)
    customization = haiku.customization("FINE_TUNING")
    assert customization is not None and "MIN_LINES = 32" in customization.limits_source


def test_nova_takes_no_batch_size_and_distils_from_larger_teachers() -> None:
    micro = model("amazon.nova-micro-v1:0:128k")
    pro = model("amazon.nova-pro-v1:0:300k")
    assert micro.hyperparameter("batchSize") is None
    assert micro.hyperparameter_keys == ("epochCount", "learningRate", "learningRateWarmupSteps")
    rate = micro.hyperparameter("learningRate")
    assert rate is not None and (rate.minimum, rate.maximum, rate.default) == (1e-6, 1e-4, 1e-5)
    assert micro.teachers_for() == ("amazon.nova-pro-v1:0", "amazon.nova-premier-v1:0")
    assert pro.teachers_for() == ("amazon.nova-premier-v1:0",)
    limits = micro.dataset_limits("FINE_TUNING")
    assert limits is not None and (limits.min_records, limits.max_records) == (8, 20_000)
    pro_limits = pro.dataset_limits("FINE_TUNING")
    assert pro_limits is not None and pro_limits.max_images_per_record == 10


def test_nova_micro_is_text_only_while_lite_and_pro_take_images_and_videos() -> None:
    micro = model("amazon.nova-micro-v1:0:128k").dataset_limits("FINE_TUNING")
    assert micro is not None and (micro.image_formats, micro.video_formats) == ((), ())
    for model_id in ("amazon.nova-lite-v1:0:300k", "amazon.nova-pro-v1:0:300k"):
        limits = model(model_id).dataset_limits("FINE_TUNING")
        assert limits is not None
        assert limits.image_formats == ("png", "jpeg", "gif", "webp")
        assert limits.video_formats == ("mov", "mkv", "mp4", "webm")


def test_nova_reserves_its_documented_keywords_for_fine_tuning_and_distillation() -> None:
    keywords = ("User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]")
    for entry in CATALOG:
        for customization in entry.customizations:
            limits = customization.limits
            if entry.name.startswith("Nova") and limits.data_format is DataFormat.CONVERSE:
                assert limits.reserved_keywords == keywords, (entry.name, customization.type)
                assert "fails the training job" in limits.reserved_keywords_reason
                assert (
                    "Preparing data for fine-tuning Understanding models" in limits.reserved_keywords_reason
                )
            else:
                assert limits.reserved_keywords == (), (entry.name, customization.type)


@ENTRIES
def test_distillation_takes_100_to_15000_prompts_with_optional_responses(model: ModelEntry) -> None:
    limits = model.dataset_limits(DISTILLATION)
    if limits is None:
        return
    assert (limits.min_records, limits.max_records) == (100, 15_000)
    assert limits.response_optional and limits.data_format is DataFormat.CONVERSE
    # Anthropic and Meta students take single-turn prompts; Nova students multi-turn conversations.
    assert limits.single_user_prompt == (model.provider in ("Anthropic", "Meta"))
    customization = model.customization(DISTILLATION)
    assert customization is not None and "100 to 15K" in customization.limits_source


def test_fine_tuning_data_still_needs_the_response() -> None:
    for entry in CATALOG:
        limits = entry.dataset_limits("FINE_TUNING")
        assert limits is None or not (limits.response_optional or limits.single_user_prompt)


def test_llama_32_vision_takes_images_and_the_text_llamas_none() -> None:
    for model_id in ("meta.llama3-2-11b-instruct-v1:0:128k", "meta.llama3-2-90b-instruct-v1:0:128k"):
        limits = model(model_id).dataset_limits("FINE_TUNING")
        assert limits is not None
        assert (limits.image_formats, limits.video_formats) == (("gif", "jpeg", "png", "webp"), ())
    for model_id in ("meta.llama3-2-1b-instruct-v1:0:128k", "meta.llama3-3-70b-instruct-v1:0:128k"):
        limits = model(model_id).dataset_limits("FINE_TUNING")
        assert limits is not None and (limits.image_formats, limits.video_formats) == ((), ())


@ENTRIES
def test_media_in_the_data_follows_the_input_modalities(model: ModelEntry) -> None:
    entry = model
    for customization in entry.customizations:
        limits = customization.limits
        if limits.image_formats:
            assert "image" in entry.input_modalities
        if limits.video_formats:
            assert "video" in entry.input_modalities
        if limits.data_format is DataFormat.CONVERSE and customization.type == "FINE_TUNING":
            # A Converse fine-tuning dataset takes every medium the model reads.
            assert bool(limits.image_formats) == ("image" in entry.input_modalities)
            assert bool(limits.video_formats) == ("video" in entry.input_modalities)
        if customization.type == "DISTILLATION":
            assert (limits.image_formats, limits.video_formats) == ((), ())  # text to text


def test_llama_facts() -> None:
    llama_31 = model("meta.llama3-1-8b-instruct-v1:0:128k")
    assert llama_31.regions_for("DISTILLATION") == ("us-west-2",)
    assert "meta.llama3-1-405b-instruct-v1:0" in llama_31.teachers_for()
    limits_31 = llama_31.dataset_limits("FINE_TUNING")
    assert limits_31 is not None and limits_31.data_format is DataFormat.PROMPT_COMPLETION
    limits_90b = model("meta.llama3-2-90b-instruct-v1:0:128k").dataset_limits("FINE_TUNING")
    assert limits_90b is not None and limits_90b.max_tokens_for(1) == 10_000
    assert limits_90b.data_format is DataFormat.CONVERSE
    assert model("meta.llama3-2-1b-instruct-v1:0:128k").customization_types == ("FINE_TUNING",)
    batch = llama_31.hyperparameter("batchSize")
    assert batch is not None and (batch.minimum, batch.maximum, batch.default) == (1, 1, 1)


def test_titan_text_token_limits_depend_on_batch_size() -> None:
    express = model("amazon.titan-text-express-v1:0:8k").dataset_limits("FINE_TUNING")
    lite = model("amazon.titan-text-lite-v1:0:4k").dataset_limits("FINE_TUNING")
    assert express is not None and lite is not None
    assert [express.max_tokens_for(b) for b in (1, 2, 4)] == [4_096, 2_048, 2_048]
    assert [lite.max_tokens_for(b) for b in (1, 2, 3, 6)] == [4_096, 4_096, 2_048, 2_048]
    assert express.max_file_bytes == 1000**3 and express.validation_max_file_bytes == 100 * 1000**2
    assert express.max_tokens_for(None) == 2_048, "unknown batch size: the strictest limit"


def test_titan_continued_pre_training_has_the_titan_token_quotas_and_a_10_gb_file() -> None:
    express = model("amazon.titan-text-express-v1:0:8k").dataset_limits("CONTINUED_PRE_TRAINING")
    lite = model("amazon.titan-text-lite-v1:0:4k").dataset_limits("CONTINUED_PRE_TRAINING")
    assert express is not None and lite is not None
    assert express.data_format is DataFormat.CONTINUED_PRE_TRAINING
    assert [express.max_tokens_for(b) for b in (1, 2, 4)] == [4_096, 2_048, 2_048]
    assert [lite.max_tokens_for(b) for b in (1, 2, 3, 6)] == [4_096, 4_096, 2_048, 2_048]
    for limits in (express, lite):
        assert limits.max_file_bytes == 10 * 1000**3 and limits.validation_max_file_bytes == 100 * 1000**2
    customization = model("amazon.titan-text-express-v1:0:8k").customization("CONTINUED_PRE_TRAINING")
    assert customization is not None and "Maximum (Continued Pre-training)" in customization.limits_source


def test_image_models_take_special_values_and_no_validation_set() -> None:
    image = model("amazon.titan-image-generator-v2:0")
    steps = image.hyperparameter("stepCount")
    assert steps is not None and steps.required and steps.special_values == ("auto",)
    embeddings = model("amazon.titan-embed-image-v1:0")
    epochs = embeddings.hyperparameter("epochCount")
    assert epochs is not None and epochs.special_values == ("Auto",) and not epochs.required
    for entry in (image, embeddings):
        limits = entry.dataset_limits("FINE_TUNING")
        assert limits is not None and limits.data_format is DataFormat.IMAGE_CAPTION
        assert not limits.validation_allowed
    image_limits = image.dataset_limits("FINE_TUNING")
    assert image_limits is not None and (image_limits.caption_min_chars, image_limits.caption_max_chars) == (
        3,
        1_024,
    )


def test_cohere_eval_percentage() -> None:
    spec = model("cohere.command-light-text-v14:7:4k").hyperparameter("evalPercentage")
    assert spec is not None and (spec.minimum, spec.maximum, spec.default) == (5.0, 50.0, 20.0)


# ---------------------------------------------------------------------------------------------
# Look-ups
# ---------------------------------------------------------------------------------------------


def test_find_model_matches_any_identifier_exactly() -> None:
    haiku = find_model("anthropic.claude-3-haiku-20240307-v1:0:200k")
    assert haiku is not None and haiku.name == "Claude 3 Haiku"
    assert find_model("anthropic.claude-3-haiku-20240307-v1:0") is haiku, "the alias resolves"
    assert find_model("ANTHROPIC.claude-3-haiku-20240307-v1:0:200k") is None, "case-sensitive"
    assert find_model("anthropic.claude-3-haiku") is None


def test_suggest_models_returns_the_closest_ids() -> None:
    assert suggest_models("amazon.nova-lite-v1:0:128k")[0] == "amazon.nova-lite-v1:0:300k"
    assert suggest_models("amazon.nova-2-lite-v1:0:300k")[0] == "amazon.nova-2-lite-v1:0:256k"
    assert suggest_models("claude-3-haiku") == ["anthropic.claude-3-haiku-20240307-v1:0:200k"]
    assert len(suggest_models("meta.llama3", n=2)) == 2
    assert suggest_models("") == []
    assert suggest_models("x") == [], "a one-letter query suggests nothing rather than noise"


def test_unsupported_type_has_no_limits_and_no_regions() -> None:
    haiku = model("anthropic.claude-3-haiku-20240307-v1:0:200k")
    assert haiku.dataset_limits("DISTILLATION") is None
    assert haiku.regions_for("DISTILLATION") == ()
    assert haiku.teachers_for() == ()
    assert haiku.hyperparameter("nope") is None


def test_format_number_is_stable() -> None:
    assert [format_number(v) for v in (5, 1e-5, 0.0001, 1.0, 5e-8)] == [
        "5",
        "1e-05",
        "0.0001",
        "1.0",
        "5e-08",
    ]
    assert float(format_number(1e-5)) == 1e-5
    assert math.isclose(float(format_number(0.1)), 0.1)
    with pytest.raises(TypeError):
        format_number(True)


def test_all_hyperparameter_keys_lists_every_key_once() -> None:
    keys = catalog.ALL_HYPERPARAMETER_KEYS
    assert len(keys) == len(set(keys))
    assert {"epochCount", "batchSize", "stepCount", "evalPercentage", "learningRateMultiplier"} <= set(keys)
