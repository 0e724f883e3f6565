"""The catalog of customizable Bedrock base models: what each accepts.

One `ModelEntry` per base model that can be customized, written as data (the table at the bottom
of this module), with the source of every fact: the public user-guide page, AWS sample or provider
documentation that its `SOURCE_*` constant names (these are what `models show` prints), as read in
2026-08 and reviewed in 2026-12. Where no source documents a fact, the field or a note says "not
documented" rather than guess.

Decisions:
- `model_id` is the exact `baseModelIdentifier` a customization job takes, with its context-window
  suffix (`anthropic.claude-3-haiku-20240307-v1:0:200k`). The plain foundation-model id without the
  suffix is listed as an alias: `find_model` resolves it so the config check can say which
  identifier to write instead of only "unknown model".
- Context windows are read from the identifier's suffix, in thousands of tokens ("128k" -> 128,000).
- Sizes in the user guide ("10 GB") are read as decimal units (10 * 1000**3 bytes): the stricter
  reading, so a file we accept is never rejected by Bedrock for its size.
- Distillation teachers must be larger than their student: the reference lists "Nova Pro / Nova
  Premier -> Nova Lite/Micro/Pro", so Nova Pro may teach Micro and Lite, and only Nova Premier may
  teach Nova Pro. Teachers are listed by their foundation-model id; inference-profile ids are not
  documented in the reference and are therefore not listed.
- Prices are not here: `finetune.core.prices` lists them per model id and region, with sources.
- Hyperparameters apply to every customization type of a model (the reference documents them per
  model).
- Reinforcement fine-tuning (REINFORCEMENT_FINE_TUNING, Nova 2 Lite and others) is not offered: the
  customization types listed are those the configuration, the job contract and the stacks can carry
  through to a job. RFT needs a grader (a Lambda function and its permissions) and typed
  hyperparameters under `customizationConfig.rftConfig`, which none of them model; offering it here
  only led to a configuration error after `models` and `validate` had listed it (review finding 54).
  Nova 2 Lite is offered for supervised fine-tuning instead.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Literal

from finetune.core import names
from finetune.core.formats import DataFormat, DatasetLimits, TokenLimit

# --------------------------------------------------------------------------------------------------
# Sources (every fact in the table names one of these)
# --------------------------------------------------------------------------------------------------

AS_OF = "2026-08"
GUIDE = "https://docs.aws.amazon.com/bedrock/latest/userguide"
SOURCE_HYPERPARAMETERS = f"Bedrock user guide: Custom model hyperparameters, {GUIDE}/custom-models-hp.html"
SOURCE_REGIONS = (
    "Bedrock user guide: Supported models and Regions for fine-tuning and continued pre-training, "
    f"{GUIDE}/custom-model-supported.html"
)
SOURCE_DISTILLATION = f"Bedrock user guide: Choose teacher and student models for distillation, {GUIDE}/prequisites-model-distillation.html"
# Nova 2 Lite supervised fine-tuning on Bedrock: AWS's sample (aws-samples/amazon-nova-samples,
# customization/Nova_2.0/bedrock/02-e2e-multimodal-sft/03_finetune_on_bedrock.ipynb) starts a
# FINE_TUNING job on amazon.nova-2-lite-v1:0:256k in us-east-1 with epochCount, batchSize and
# learningRate; the Bedrock user guide's "Supervised fine-tuning on Amazon Nova 2.0" gives the data
# format and media; AWS's Nova dataset validator gives the sample bounds.
SOURCE_NOVA_2_LITE = (
    "AWS sample: aws-samples/amazon-nova-samples, customization/Nova_2.0/bedrock/02-e2e-multimodal-sft/"
    "03_finetune_on_bedrock.ipynb (FINE_TUNING on amazon.nova-2-lite-v1:0:256k, us-east-1)"
)
SOURCE_NOVA_2_LITE_HYPERPARAMETERS = (
    "not documented for Bedrock: the keys are those of AWS's sample job (epochCount 2, batchSize 1, "
    "learningRate 1e-05); the epochCount and learningRate bounds and defaults are assumed from the Nova "
    "1.0 table (Bedrock user guide: Amazon Nova Understanding model customization hyperparameters); "
    "batchSize is limited to the sample's value"
)
SOURCE_NOVA_2_LITE_DATA = (
    "Bedrock user guide: Supervised fine-tuning on Amazon Nova 2.0 (Converse format, PNG/JPEG/GIF images, "
    "MOV/MKV/MP4 videos, no validation set); AWS's Nova dataset validator (aws-samples/amazon-nova-samples, "
    "nova_ft_dataset_validator.py: 200 to 20,000 samples for Nova 2.0 Lite SFT, at most 10 images); "
    "Nova user guide: reserved keywords"
)
SOURCE_DATA = (
    f"Bedrock user guide: Prepare your training datasets, {GUIDE}/model-customization-prepare.html; "
    "Nova user guide: Preparing data for fine-tuning, https://docs.aws.amazon.com/nova/latest/userguide/"
    "fine-tune-prepare-data-understanding.html"
)
SOURCE_SERVING = (
    f"Bedrock user guide: Provisioned Throughput, {GUIDE}/prov-throughput.html; Deploy a custom model for "
    f"on-demand inference, {GUIDE}/deploy-custom-model-on-demand.html"
)
SOURCE_IDENTITY = (
    f"Bedrock user guide: Supported models and Regions for fine-tuning (model ids with their context "
    f"suffix), {GUIDE}/custom-model-fine-tuning.html"
)
SOURCE_LIFECYCLE = (
    f"Bedrock user guide: the newest fine-tuning table ({GUIDE}/custom-model-fine-tuning.html) against the "
    f"older one ({GUIDE}/custom-model-supported.html); Model lifecycle, {GUIDE}/model-lifecycle.html"
)

LIFECYCLE_CURRENT = "current"
LIFECYCLE_DROPPED = "dropped from the newest fine-tuning table (unconfirmed)"
# Cohere: "deprecated" means no longer available to new customers, available to existing ones until
# a shutdown date (Cohere documentation, Deprecations); Bedrock's own table dropped the model too.
LIFECYCLE_COHERE_DEPRECATED = f"fine-tuning deprecated by Cohere on 2025-09-15; {LIFECYCLE_DROPPED}"
SOURCE_COHERE_LIFECYCLE = (
    "Cohere documentation: Fine-tuning Cohere Models on Amazon Bedrock (\"Cohere's fine-tuning feature was "
    'deprecated on September 15, 2025"), https://docs.cohere.com/docs/fine-tuning-cohere-models-on-amazon-bedrock; '
    f"{SOURCE_LIFECYCLE}"
)

# The customization types the catalog offers: those of botocore's enum CustomizationType that this
# project can carry through to a job (not IMPORTED, and not REINFORCEMENT_FINE_TUNING: see the module
# docstring).
FINE_TUNING = "FINE_TUNING"
CONTINUED_PRE_TRAINING = "CONTINUED_PRE_TRAINING"
DISTILLATION = "DISTILLATION"
CUSTOMIZATION_TYPES = (FINE_TUNING, CONTINUED_PRE_TRAINING, DISTILLATION)
TYPE_ABBREVIATIONS = {
    FINE_TUNING: "FT",
    CONTINUED_PRE_TRAINING: "CPT",
    DISTILLATION: "DIST",
}

US_EAST_1 = "us-east-1"
US_WEST_2 = "us-west-2"

MB = 1000**2
GB = 1000**3

# --------------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------------

HyperparameterKind = Literal["int", "float"]
Number = int | float


def format_number(value: Number) -> str:
    """A number as Bedrock's string-valued hyperParameters map expects it.

    Ints are written without a fraction ("5"); floats with Python's shortest round-tripping repr
    ("1e-05", "0.0001", "1.0"), which is stable across runs and parses back to the same float.
    """
    if isinstance(value, bool):
        raise TypeError("a bool is not a hyperparameter value")
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


@dataclass(frozen=True)
class HyperparameterSpec:
    """One hyperparameter a model takes: the exact Bedrock key, its type and inclusive bounds."""

    key: str
    kind: HyperparameterKind
    minimum: Number
    maximum: Number
    default: Number | str | None = None  # None: Bedrock chooses (or the key is required)
    required: bool = False
    special_values: tuple[str, ...] = ()  # strings accepted besides numbers, e.g. "auto"

    def in_range(self, value: Number) -> bool:
        return self.minimum <= value <= self.maximum

    def range_text(self) -> str:
        return f"{format_number(self.minimum)} to {format_number(self.maximum)} (inclusive)"

    def describe(self) -> str:
        """`int 1..10, default 2` and the special values, for tables and messages."""
        text = f"{self.kind} {format_number(self.minimum)}..{format_number(self.maximum)}"
        if self.special_values:
            text += " or " + " | ".join(f'"{value}"' for value in self.special_values)
        if self.required:
            text += ", required"
        elif self.default is not None:
            default = self.default if isinstance(self.default, str) else format_number(self.default)
            text += f", default {default}"
        return text


@dataclass(frozen=True)
class Customization:
    """One customization type a model supports: where, with which data and (distillation) teachers."""

    type: str
    regions: tuple[str, ...]
    limits: DatasetLimits
    teachers: tuple[str, ...] = ()  # allowed teacherModelIdentifier values (DISTILLATION only)
    source: str = SOURCE_REGIONS
    limits_source: str = SOURCE_DATA


@dataclass(frozen=True)
class ServingOptions:
    """How a custom model of this base can be served.

    Provisioned Throughput is documented for every custom model; on-demand deployment only for the
    models and regions in reference section 3 (for models customized on or after 2025-07-16).
    """

    provisioned: bool = True
    on_demand_regions: tuple[str, ...] = ()
    source: str = SOURCE_SERVING

    @property
    def on_demand(self) -> bool:
        return bool(self.on_demand_regions)


@dataclass(frozen=True)
class ModelEntry:
    """One customizable base model."""

    model_id: str  # the exact baseModelIdentifier, with the context suffix
    provider: str
    name: str
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    context_window: int | None  # tokens; None: not documented
    customizations: tuple[Customization, ...]
    hyperparameters: tuple[HyperparameterSpec, ...]
    serving: ServingOptions
    license: str
    lifecycle: str
    aliases: tuple[str, ...] = ()  # other ids find_model resolves (not accepted in a job)
    languages: tuple[str, ...] = ()  # empty: not documented in the reference
    notes: tuple[str, ...] = ()
    identity_source: str = SOURCE_IDENTITY
    hyperparameters_source: str = SOURCE_HYPERPARAMETERS
    lifecycle_source: str = SOURCE_LIFECYCLE

    @property
    def identifiers(self) -> tuple[str, ...]:
        return (self.model_id, *self.aliases)

    @property
    def customization_types(self) -> tuple[str, ...]:
        return tuple(c.type for c in self.customizations)

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region where some customization type is available, in table order."""
        return tuple(dict.fromkeys(r for c in self.customizations for r in c.regions))

    @property
    def data_formats(self) -> tuple[DataFormat, ...]:
        return tuple(dict.fromkeys(c.limits.data_format for c in self.customizations))

    def customization(self, customization_type: str) -> Customization | None:
        return next((c for c in self.customizations if c.type == customization_type), None)

    def dataset_limits(self, customization_type: str) -> DatasetLimits | None:
        found = self.customization(customization_type)
        return found.limits if found else None

    def regions_for(self, customization_type: str) -> tuple[str, ...]:
        found = self.customization(customization_type)
        return found.regions if found else ()

    def teachers_for(self, customization_type: str = DISTILLATION) -> tuple[str, ...]:
        found = self.customization(customization_type)
        return found.teachers if found else ()

    def hyperparameter(self, key: str) -> HyperparameterSpec | None:
        return next((spec for spec in self.hyperparameters if spec.key == key), None)

    @property
    def hyperparameter_keys(self) -> tuple[str, ...]:
        return tuple(spec.key for spec in self.hyperparameters)


# --------------------------------------------------------------------------------------------------
# Shared building blocks of the table
# --------------------------------------------------------------------------------------------------


def _int(
    key: str,
    minimum: int,
    maximum: int,
    default: int | None = None,
    *,
    required: bool = False,
    special_values: tuple[str, ...] = (),
) -> HyperparameterSpec:
    return HyperparameterSpec(key, "int", minimum, maximum, default, required, special_values)


def _float(key: str, minimum: float, maximum: float, default: float | None = None) -> HyperparameterSpec:
    return HyperparameterSpec(key, "float", minimum, maximum, default)


TEXT = ("text",)
TEXT_IMAGE = ("text", "image")
TEXT_IMAGE_VIDEO = ("text", "image", "video")

LICENSE_AMAZON = "Amazon model: AWS Service Terms"
LICENSE_ANTHROPIC = "Anthropic model: Anthropic commercial terms of service via AWS"
LICENSE_META_31 = "Meta Llama 3.1 Community License and Acceptable Use Policy"
LICENSE_META_32 = "Meta Llama 3.2 Community License and Acceptable Use Policy"
LICENSE_META_33 = "Meta Llama 3.3 Community License and Acceptable Use Policy"
LICENSE_COHERE = "Cohere model: Cohere terms of use via AWS Marketplace"

PROVISIONED_ONLY = ServingOptions()

# Hyperparameters (reference section 5), in the order the user guide lists them.
CLAUDE_3_HAIKU_HYPERPARAMETERS = (
    _int("epochCount", 1, 10, 2),
    _int("batchSize", 4, 256, 32),
    _float("learningRateMultiplier", 0.1, 2.0, 1.0),
    _float("earlyStoppingThreshold", 0.0, 0.1, 0.001),
    _int("earlyStoppingPatience", 1, 10, 2),
)
NOVA_HYPERPARAMETERS = (
    _int("epochCount", 1, 5, 2),
    _float("learningRate", 1e-6, 1e-4, 1e-5),
    _int("learningRateWarmupSteps", 0, 100, 10),
)
LLAMA_HYPERPARAMETERS = (
    _int("epochCount", 1, 10, 5),
    _int("batchSize", 1, 1, 1),
    _float("learningRate", 5e-6, 0.1, 1e-4),
)
TITAN_TEXT_HYPERPARAMETERS = (
    _int("epochCount", 1, 10, 5),
    _int("batchSize", 1, 64, 1),
    _float("learningRate", 0.0, 1.0, 1e-5),
    _int("learningRateWarmupSteps", 0, 250, 5),
)
TITAN_PREMIER_HYPERPARAMETERS = (
    _int("epochCount", 1, 5, 2),
    # The guide gives the range 1-1 and no default: 1 is the only value, so it is the default.
    _int("batchSize", 1, 1, 1),
    _float("learningRate", 1e-7, 1e-5, 1e-6),
    _int("learningRateWarmupSteps", 0, 20, 5),
)
TITAN_IMAGE_HYPERPARAMETERS = (
    _int("batchSize", 8, 192, 8),
    _int("stepCount", 10, 40000, None, required=True, special_values=("auto",)),
    _float("learningRate", 1e-7, 1.0, 1e-5),
)
TITAN_EMBEDDINGS_HYPERPARAMETERS = (
    _int("epochCount", 1, 100, None, special_values=("Auto",)),
    _int("batchSize", 256, 9216, 576),
    _float("learningRate", 5e-8, 1.0, 5e-5),
)
COHERE_HYPERPARAMETERS = (
    _int("epochCount", 1, 100, 1),
    _int("batchSize", 8, 32, 8),
    _float("learningRate", 5e-6, 0.1, 1e-5),
    _float("earlyStoppingThreshold", 0.0, 0.1, 0.01),
    _int("earlyStoppingPatience", 1, 10, 6),
    # The reference gives 5-50 (20) without a type; the user guide's Cohere table types it Float.
    _float("evalPercentage", 5.0, 50.0, 20.0),
)
# Nova 2 Lite supervised fine-tuning: see SOURCE_NOVA_2_LITE_HYPERPARAMETERS (no Bedrock table found).
# batchSize has no default: unless it is set, Bedrock chooses.
NOVA_2_LITE_HYPERPARAMETERS = (
    _int("epochCount", 1, 5, 2),
    _int("batchSize", 1, 1),
    _float("learningRate", 1e-6, 1e-4, 1e-5),
)

# Dataset limits (reference section 6), per format and model.
# Claude 3 Haiku validation sets: 32 to 1,000 records. The user guide gives only the maximum; AWS's
# own Claude 3 Haiku dataset validator (the Bedrock fine-tuning samples' data-validation script:
# MIN_LINES = 32, MAX_VALIDATION_LINES = 1000) fails a validation file below 32 records as it does a
# training file. Enforced as an error, like the training minimum: AWS's tool treats it as one, and a
# job that fails after upload costs more than 20 more held-out records.
SOURCE_HAIKU_DATA = (
    f"{SOURCE_DATA}; validation minimum of 32 records: AWS's Claude 3 Haiku dataset validator "
    "(Bedrock fine-tuning samples, data validation: MIN_LINES = 32, MAX_VALIDATION_LINES = 1000)"
)
CLAUDE_3_HAIKU_LIMITS = DatasetLimits(
    DataFormat.CLAUDE_MESSAGES,
    min_records=32,
    max_records=10_000,
    token_limits=(TokenLimit(32_000),),
    max_file_bytes=10 * GB,
    validation_min_records=32,
    validation_max_records=1_000,
    validation_max_file_bytes=1 * GB,
)
# Media `format` values for Converse data, per model (empty: no media of that kind). Nova 1.0 (Lite,
# Pro): AWS's Nova fine-tuning dataset validator (aws-samples/amazon-nova-samples,
# customization/bedrock-finetuning/understanding/dataset_validation/nova_ft_dataset_validator.py,
# IMAGE_FORMATS and VIDEO_FORMATS). Llama 3.2 Vision: Bedrock user guide, "Prepare data for
# fine-tuning image and text processing models" ("gif, jpeg, png, and webp"; no video).
NOVA_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
NOVA_VIDEO_FORMATS = ("mov", "mkv", "mp4", "webm")
LLAMA_32_VISION_IMAGE_FORMATS = ("gif", "jpeg", "png", "webp")
SOURCE_DATA_AND_MEDIA = (
    f"{SOURCE_DATA}; media formats: Nova, AWS's Nova fine-tuning dataset validator "
    "(aws-samples/amazon-nova-samples, nova_ft_dataset_validator.py); Llama 3.2 Vision, Bedrock user "
    "guide: Prepare data for fine-tuning image and text processing models"
)

# Nova guide, "Preparing data for fine-tuning Understanding models" (item 12; also applied by AWS's
# Nova dataset validator to fine-tuning and distillation data): these are reserved keywords, and a
# user or system prompt that starts with or contains one fails the training job. Matched exactly as
# documented (AWS's validator also refuses other capitalisations, which the guide does not list).
NOVA_RESERVED_KEYWORDS = ("User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]")
NOVA_RESERVED_KEYWORDS_REASON = (
    "Nova reserves it, and a user or system prompt that contains one fails the training job (Nova "
    'user guide, "Preparing data for fine-tuning Understanding models")'
)

# "Context 32k tokens" is read as 32,000 (the stricter reading). Nova Micro is text only: its limits
# take no media (the Nova guide's model table; AWS's validator rejects image or video samples for it).
NOVA_LIMITS = DatasetLimits(
    DataFormat.CONVERSE,
    min_records=8,
    max_records=20_000,
    token_limits=(TokenLimit(32_000),),
    image_formats=NOVA_IMAGE_FORMATS,
    video_formats=NOVA_VIDEO_FORMATS,
    max_images_per_record=10,
    reserved_keywords=NOVA_RESERVED_KEYWORDS,
    reserved_keywords_reason=NOVA_RESERVED_KEYWORDS_REASON,
)
NOVA_MICRO_LIMITS = replace(NOVA_LIMITS, image_formats=(), video_formats=(), max_images_per_record=None)
# Distillation data: prompts in the Converse format, from which the teacher writes the responses.
# - Text only: the Bedrock user guide ("Prepare your training datasets for distillation") says the
#   distillation models support only the text-to-text modality.
# - The assistant's response is optional: "[Optional] In the messages field, include assistant role
#   containing the desired response" (Bedrock user guide, "Option 1: Provide your own prompts for data
#   preparation"); the Nova guide shows "Distillation using prompts with no labels".
# - Anthropic and Meta students take single-turn prompts only ("you can only have one user prompt");
#   Nova students take multi-turn conversations (the same page).
# - 100 to 15,000 prompts or prompt-response pairs: the Nova guide's "Preparing data for distilling
#   understanding models", Dataset limits table; AWS's distillation dataset validator
#   (aws-samples/amazon-bedrock-samples, custom-models/model_distillation/dataset-validation) applies
#   the same minimum to every student, so the bounds are applied to the Llama students too.
SOURCE_DISTILLATION_DATA = (
    "Bedrock user guide: Prepare your training datasets for distillation, Option 1: Provide your own "
    "prompts for data preparation; Nova user guide: Preparing data for distilling understanding models "
    "(Dataset limits: 100 to 15K prompts or prompt-response pairs)"
)
DISTILLATION_LIMITS = DatasetLimits(
    DataFormat.CONVERSE, min_records=100, max_records=15_000, response_optional=True
)
NOVA_DISTILLATION_LIMITS = replace(
    DISTILLATION_LIMITS,
    reserved_keywords=NOVA_RESERVED_KEYWORDS,
    reserved_keywords_reason=NOVA_RESERVED_KEYWORDS_REASON,
)
LLAMA_DISTILLATION_LIMITS = replace(DISTILLATION_LIMITS, single_user_prompt=True)
# Input, output and input+output are each <= 16,000 tokens; a record is checked as a whole.
LLAMA_31_LIMITS = DatasetLimits(
    DataFormat.PROMPT_COMPLETION, min_records=100, max_records=10_000, token_limits=(TokenLimit(16_000),)
)
# Llama 3.2 1B/3B and Llama 3.3 70B are text only; 11B and 90B Vision take images.
LLAMA_32_LIMITS = DatasetLimits(
    DataFormat.CONVERSE, min_records=100, max_records=10_000, token_limits=(TokenLimit(16_000),)
)
LLAMA_32_VISION_LIMITS = replace(LLAMA_32_LIMITS, image_formats=LLAMA_32_VISION_IMAGE_FORMATS)
LLAMA_32_90B_LIMITS = replace(LLAMA_32_VISION_LIMITS, token_limits=(TokenLimit(10_000),))
TITAN_TEXT_EXPRESS_LIMITS = DatasetLimits(
    DataFormat.PROMPT_COMPLETION,
    token_limits=(TokenLimit(4_096, 1, 1), TokenLimit(2_048, 2, 4)),
    max_file_bytes=1 * GB,
    validation_max_file_bytes=100 * MB,
)
TITAN_TEXT_LITE_LIMITS = DatasetLimits(
    DataFormat.PROMPT_COMPLETION,
    token_limits=(TokenLimit(4_096, 1, 2), TokenLimit(2_048, 3, 6)),
    max_file_bytes=1 * GB,
    validation_max_file_bytes=100 * MB,
)
# Continued pre-training of Titan Text: the same per-record token quotas as fine-tuning, by batch size
# ("Character quota per sample in dataset: Token quota x 6"), a 10 GB training file and a 100 MB
# validation file (Bedrock user guide, "Model requirements for training and validation datasets",
# Maximum (Continued Pre-training)). Jobs over them fail: "Maximum input token count 4919 exceeds
# limit of 4096 for train data" (amazon-bedrock-workshop issues #224, #270).
SOURCE_CPT_DATA = (
    "Bedrock user guide: Prepare your training datasets for fine-tuning and continued pre-training, "
    "Model requirements for training and validation datasets (Titan Text G1 - Express and Lite, "
    "Maximum (Continued Pre-training))"
)
TITAN_TEXT_EXPRESS_CPT_LIMITS = DatasetLimits(
    DataFormat.CONTINUED_PRE_TRAINING,
    token_limits=TITAN_TEXT_EXPRESS_LIMITS.token_limits,
    max_file_bytes=10 * GB,
    validation_max_file_bytes=100 * MB,
)
TITAN_TEXT_LITE_CPT_LIMITS = replace(
    TITAN_TEXT_EXPRESS_CPT_LIMITS, token_limits=TITAN_TEXT_LITE_LIMITS.token_limits
)
# Bedrock user guide, "Prepare your training datasets for fine-tuning and continued pre-training",
# Model requirements for training and validation datasets: Titan Text Premier takes 4,096 input and
# output tokens at batch size 1 (its only batch size), a 1 GB training and a 100 MB validation file;
# Cohere Command takes 4,096 input and 2,048 output tokens, 10,000 training and 1,000 validation
# records. Cohere's own documentation ("Fine-tuning Cohere Models on Amazon Bedrock") gives the
# prompt and completion together 4,096 tokens, drops longer examples, and needs at least 32.
SOURCE_PREMIER_COHERE_DATA = (
    "Bedrock user guide: Prepare your training datasets for fine-tuning and continued pre-training, "
    "Model requirements for training and validation datasets"
)
SOURCE_COHERE_DATA = (
    f"{SOURCE_PREMIER_COHERE_DATA}; Cohere documentation: Fine-tuning Cohere Models on Amazon Bedrock "
    "(at least 32 examples; prompt and completion 4,096 tokens together)"
)
TITAN_TEXT_PREMIER_LIMITS = DatasetLimits(
    DataFormat.PROMPT_COMPLETION,
    token_limits=(TokenLimit(4_096, 1, 1),),
    max_file_bytes=1 * GB,
    validation_max_file_bytes=100 * MB,
)
COHERE_COMMAND_LIMITS = DatasetLimits(
    DataFormat.PROMPT_COMPLETION,
    min_records=32,
    max_records=10_000,
    token_limits=(TokenLimit(4_096),),
    completion_max_tokens=2_048,
    validation_max_records=1_000,
)
TITAN_IMAGE_LIMITS = DatasetLimits(
    DataFormat.IMAGE_CAPTION,
    min_records=5,
    max_records=10_000,
    validation_allowed=False,
    caption_min_chars=3,
    caption_max_chars=1_024,
)
TITAN_EMBEDDINGS_LIMITS = DatasetLimits(
    DataFormat.IMAGE_CAPTION,
    min_records=1_000,
    max_records=500_000,
    validation_allowed=False,
    caption_min_chars=0,
    caption_max_chars=2_560,
)
# Nova 2 Lite SFT: Converse records, Nova 1.0's rules with Nova 2.0's narrower media formats. "Providing
# a validation set ... will not be supported during SFT training" (the Nova 2.0 guide: "it is
# ignored"): none is accepted. The per-record token limit is not documented for Bedrock: none is set.
NOVA_2_LITE_LIMITS = DatasetLimits(
    DataFormat.CONVERSE,
    min_records=200,
    max_records=20_000,
    validation_allowed=False,
    image_formats=("png", "jpeg", "gif"),
    video_formats=("mov", "mkv", "mp4"),
    max_images_per_record=10,
    reserved_keywords=NOVA_RESERVED_KEYWORDS,
    reserved_keywords_reason=NOVA_RESERVED_KEYWORDS_REASON,
)

# Distillation teachers (foundation-model ids).
NOVA_PRO_TEACHER = "amazon.nova-pro-v1:0"
NOVA_PREMIER_TEACHER = "amazon.nova-premier-v1:0"
LLAMA_31_405B_TEACHER = "meta.llama3-1-405b-instruct-v1:0"
LLAMA_31_70B_TEACHER = "meta.llama3-1-70b-instruct-v1:0"
LLAMA_33_70B_TEACHER = "meta.llama3-3-70b-instruct-v1:0"

NOVA_ON_DEMAND = ServingOptions(on_demand_regions=(US_EAST_1,))
LLAMA_33_ON_DEMAND = ServingOptions(on_demand_regions=(US_WEST_2,))

TITAN_TEXT_NOTE = (
    "Titan Text left the newest fine-tuning table; whether it still accepts jobs is unconfirmed."
)
LLAMA_33_NOTE = (
    "Hyperparameters assumed to be those of Llama 3.1/3.2 (the reference gives none for Llama 3.3)."
)

# --------------------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------------------

CATALOG: tuple[ModelEntry, ...] = (
    ModelEntry(
        model_id="anthropic.claude-3-haiku-20240307-v1:0:200k",
        aliases=("anthropic.claude-3-haiku-20240307-v1:0",),
        provider="Anthropic",
        name="Claude 3 Haiku",
        input_modalities=TEXT_IMAGE,
        output_modalities=TEXT,
        context_window=200_000,
        customizations=(
            Customization(FINE_TUNING, (US_WEST_2,), CLAUDE_3_HAIKU_LIMITS, limits_source=SOURCE_HAIKU_DATA),
        ),
        hyperparameters=CLAUDE_3_HAIKU_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_ANTHROPIC,
        lifecycle=LIFECYCLE_CURRENT,
        notes=("Distillation is not available for Anthropic models.",),
    ),
    ModelEntry(
        model_id="amazon.nova-micro-v1:0:128k",
        aliases=("amazon.nova-micro-v1:0",),
        provider="Amazon",
        name="Nova Micro",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=128_000,
        customizations=(
            Customization(FINE_TUNING, (US_EAST_1,), NOVA_MICRO_LIMITS),
            Customization(
                DISTILLATION,
                (US_EAST_1,),
                NOVA_DISTILLATION_LIMITS,
                limits_source=SOURCE_DISTILLATION_DATA,
                teachers=(NOVA_PRO_TEACHER, NOVA_PREMIER_TEACHER),
                source=SOURCE_DISTILLATION,
            ),
        ),
        hyperparameters=NOVA_HYPERPARAMETERS,
        serving=NOVA_ON_DEMAND,
        license=LICENSE_AMAZON,
        lifecycle=LIFECYCLE_CURRENT,
    ),
    ModelEntry(
        model_id="amazon.nova-lite-v1:0:300k",
        aliases=("amazon.nova-lite-v1:0",),
        provider="Amazon",
        name="Nova Lite",
        input_modalities=TEXT_IMAGE_VIDEO,
        output_modalities=TEXT,
        context_window=300_000,
        customizations=(
            Customization(FINE_TUNING, (US_EAST_1,), NOVA_LIMITS, limits_source=SOURCE_DATA_AND_MEDIA),
            Customization(
                DISTILLATION,
                (US_EAST_1,),
                NOVA_DISTILLATION_LIMITS,
                limits_source=SOURCE_DISTILLATION_DATA,
                teachers=(NOVA_PRO_TEACHER, NOVA_PREMIER_TEACHER),
                source=SOURCE_DISTILLATION,
            ),
        ),
        hyperparameters=NOVA_HYPERPARAMETERS,
        serving=NOVA_ON_DEMAND,
        license=LICENSE_AMAZON,
        lifecycle=LIFECYCLE_CURRENT,
    ),
    ModelEntry(
        model_id="amazon.nova-pro-v1:0:300k",
        aliases=("amazon.nova-pro-v1:0",),
        provider="Amazon",
        name="Nova Pro",
        input_modalities=TEXT_IMAGE_VIDEO,
        output_modalities=TEXT,
        context_window=300_000,
        customizations=(
            Customization(FINE_TUNING, (US_EAST_1,), NOVA_LIMITS, limits_source=SOURCE_DATA_AND_MEDIA),
            Customization(
                DISTILLATION,
                (US_EAST_1,),
                NOVA_DISTILLATION_LIMITS,
                limits_source=SOURCE_DISTILLATION_DATA,
                teachers=(NOVA_PREMIER_TEACHER,),
                source=SOURCE_DISTILLATION,
            ),
        ),
        hyperparameters=NOVA_HYPERPARAMETERS,
        serving=NOVA_ON_DEMAND,
        license=LICENSE_AMAZON,
        lifecycle=LIFECYCLE_CURRENT,
    ),
    ModelEntry(
        model_id="amazon.nova-2-lite-v1:0:256k",
        aliases=("amazon.nova-2-lite-v1:0",),
        provider="Amazon",
        name="Nova 2 Lite",
        input_modalities=TEXT_IMAGE_VIDEO,
        output_modalities=TEXT,
        context_window=256_000,
        customizations=(
            Customization(
                FINE_TUNING,
                (US_EAST_1,),
                NOVA_2_LITE_LIMITS,
                source=SOURCE_NOVA_2_LITE,
                limits_source=SOURCE_NOVA_2_LITE_DATA,
            ),
        ),
        hyperparameters=NOVA_2_LITE_HYPERPARAMETERS,
        hyperparameters_source=SOURCE_NOVA_2_LITE_HYPERPARAMETERS,
        serving=NOVA_ON_DEMAND,
        license=LICENSE_AMAZON,
        lifecycle=LIFECYCLE_CURRENT,
        notes=(
            "Not documented for Bedrock, so not enforced or assumed: the hyperparameter ranges (epochCount "
            "and learningRate follow Nova 1.0, batchSize the one value of AWS's sample), the per-record "
            "token limit, and the data file sizes.",
            "Tool use in the data is not supported by Nova 2.0 SFT (the guide: it may fail the job); "
            "reasoningContent blocks are accepted in assistant turns.",
            "Reinforcement fine-tuning is not offered (see the catalog's docstring).",
        ),
    ),
    ModelEntry(
        model_id="meta.llama3-1-8b-instruct-v1:0:128k",
        aliases=("meta.llama3-1-8b-instruct-v1:0",),
        provider="Meta",
        name="Llama 3.1 8B Instruct",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=128_000,
        customizations=(
            Customization(FINE_TUNING, (US_WEST_2,), LLAMA_31_LIMITS),
            Customization(
                DISTILLATION,
                (US_WEST_2,),
                LLAMA_DISTILLATION_LIMITS,
                limits_source=SOURCE_DISTILLATION_DATA,
                teachers=(LLAMA_31_405B_TEACHER, LLAMA_31_70B_TEACHER, LLAMA_33_70B_TEACHER),
                source=SOURCE_DISTILLATION,
            ),
        ),
        hyperparameters=LLAMA_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_META_31,
        lifecycle=LIFECYCLE_CURRENT,
    ),
    ModelEntry(
        model_id="meta.llama3-1-70b-instruct-v1:0:128k",
        aliases=("meta.llama3-1-70b-instruct-v1:0",),
        provider="Meta",
        name="Llama 3.1 70B Instruct",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=128_000,
        customizations=(
            Customization(FINE_TUNING, (US_WEST_2,), LLAMA_31_LIMITS),
            Customization(
                DISTILLATION,
                (US_WEST_2,),
                LLAMA_DISTILLATION_LIMITS,
                limits_source=SOURCE_DISTILLATION_DATA,
                teachers=(LLAMA_31_405B_TEACHER,),
                source=SOURCE_DISTILLATION,
            ),
        ),
        hyperparameters=LLAMA_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_META_31,
        lifecycle=LIFECYCLE_CURRENT,
    ),
    ModelEntry(
        model_id="meta.llama3-2-1b-instruct-v1:0:128k",
        aliases=("meta.llama3-2-1b-instruct-v1:0",),
        provider="Meta",
        name="Llama 3.2 1B Instruct",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=128_000,
        customizations=(Customization(FINE_TUNING, (US_WEST_2,), LLAMA_32_LIMITS),),
        hyperparameters=LLAMA_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_META_32,
        lifecycle=LIFECYCLE_CURRENT,
    ),
    ModelEntry(
        model_id="meta.llama3-2-3b-instruct-v1:0:128k",
        aliases=("meta.llama3-2-3b-instruct-v1:0",),
        provider="Meta",
        name="Llama 3.2 3B Instruct",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=128_000,
        customizations=(Customization(FINE_TUNING, (US_WEST_2,), LLAMA_32_LIMITS),),
        hyperparameters=LLAMA_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_META_32,
        lifecycle=LIFECYCLE_CURRENT,
    ),
    ModelEntry(
        model_id="meta.llama3-2-11b-instruct-v1:0:128k",
        aliases=("meta.llama3-2-11b-instruct-v1:0",),
        provider="Meta",
        name="Llama 3.2 11B Vision Instruct",
        input_modalities=TEXT_IMAGE,
        output_modalities=TEXT,
        context_window=128_000,
        customizations=(
            Customization(
                FINE_TUNING, (US_WEST_2,), LLAMA_32_VISION_LIMITS, limits_source=SOURCE_DATA_AND_MEDIA
            ),
        ),
        hyperparameters=LLAMA_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_META_32,
        lifecycle=LIFECYCLE_CURRENT,
    ),
    ModelEntry(
        model_id="meta.llama3-2-90b-instruct-v1:0:128k",
        aliases=("meta.llama3-2-90b-instruct-v1:0",),
        provider="Meta",
        name="Llama 3.2 90B Vision Instruct",
        input_modalities=TEXT_IMAGE,
        output_modalities=TEXT,
        context_window=128_000,
        customizations=(
            Customization(
                FINE_TUNING, (US_WEST_2,), LLAMA_32_90B_LIMITS, limits_source=SOURCE_DATA_AND_MEDIA
            ),
        ),
        hyperparameters=LLAMA_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_META_32,
        lifecycle=LIFECYCLE_CURRENT,
    ),
    ModelEntry(
        model_id="meta.llama3-3-70b-instruct-v1:0:128k",
        aliases=(LLAMA_33_70B_TEACHER,),
        provider="Meta",
        name="Llama 3.3 70B Instruct",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=128_000,
        customizations=(
            Customization(FINE_TUNING, (US_WEST_2,), LLAMA_32_LIMITS),
            Customization(
                DISTILLATION,
                (US_WEST_2,),
                LLAMA_DISTILLATION_LIMITS,
                limits_source=SOURCE_DISTILLATION_DATA,
                teachers=(LLAMA_31_405B_TEACHER,),
                source=SOURCE_DISTILLATION,
            ),
        ),
        hyperparameters=LLAMA_HYPERPARAMETERS,
        serving=LLAMA_33_ON_DEMAND,
        license=LICENSE_META_33,
        lifecycle=LIFECYCLE_CURRENT,
        notes=(LLAMA_33_NOTE,),
    ),
    ModelEntry(
        model_id="amazon.titan-text-express-v1:0:8k",
        aliases=("amazon.titan-text-express-v1",),
        provider="Amazon",
        name="Titan Text G1 - Express",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=8_000,
        customizations=(
            Customization(FINE_TUNING, (US_EAST_1, US_WEST_2), TITAN_TEXT_EXPRESS_LIMITS),
            Customization(
                CONTINUED_PRE_TRAINING,
                (US_EAST_1, US_WEST_2),
                TITAN_TEXT_EXPRESS_CPT_LIMITS,
                limits_source=SOURCE_CPT_DATA,
            ),
        ),
        hyperparameters=TITAN_TEXT_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_AMAZON,
        lifecycle=LIFECYCLE_DROPPED,
        notes=(TITAN_TEXT_NOTE,),
    ),
    ModelEntry(
        model_id="amazon.titan-text-lite-v1:0:4k",
        aliases=("amazon.titan-text-lite-v1",),
        provider="Amazon",
        name="Titan Text G1 - Lite",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=4_000,
        customizations=(
            Customization(FINE_TUNING, (US_EAST_1, US_WEST_2), TITAN_TEXT_LITE_LIMITS),
            Customization(
                CONTINUED_PRE_TRAINING,
                (US_EAST_1, US_WEST_2),
                TITAN_TEXT_LITE_CPT_LIMITS,
                limits_source=SOURCE_CPT_DATA,
            ),
        ),
        hyperparameters=TITAN_TEXT_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_AMAZON,
        lifecycle=LIFECYCLE_DROPPED,
        notes=(TITAN_TEXT_NOTE,),
    ),
    ModelEntry(
        model_id="amazon.titan-text-premier-v1:0:32k",
        aliases=("amazon.titan-text-premier-v1:0",),
        provider="Amazon",
        name="Titan Text G1 - Premier",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=32_000,
        customizations=(
            Customization(
                FINE_TUNING,
                (US_EAST_1,),
                TITAN_TEXT_PREMIER_LIMITS,
                limits_source=SOURCE_PREMIER_COHERE_DATA,
            ),
        ),
        hyperparameters=TITAN_PREMIER_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_AMAZON,
        lifecycle=LIFECYCLE_DROPPED,
        notes=(TITAN_TEXT_NOTE,),
    ),
    ModelEntry(
        model_id="amazon.titan-image-generator-v2:0",
        provider="Amazon",
        name="Titan Image Generator G1 v2",
        input_modalities=TEXT_IMAGE,
        output_modalities=("image",),
        context_window=None,
        customizations=(Customization(FINE_TUNING, (US_EAST_1, US_WEST_2), TITAN_IMAGE_LIMITS),),
        hyperparameters=TITAN_IMAGE_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_AMAZON,
        lifecycle=LIFECYCLE_CURRENT,
        notes=("Images: PNG or JPEG, at most 50 MB, sides 512-4,096 px; no validation set.",),
    ),
    ModelEntry(
        model_id="amazon.titan-embed-image-v1:0",
        provider="Amazon",
        name="Titan Multimodal Embeddings G1",
        input_modalities=TEXT_IMAGE,
        output_modalities=("embedding",),
        context_window=None,
        customizations=(Customization(FINE_TUNING, (US_EAST_1, US_WEST_2), TITAN_EMBEDDINGS_LIMITS),),
        hyperparameters=TITAN_EMBEDDINGS_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_AMAZON,
        lifecycle=LIFECYCLE_CURRENT,
        notes=("Images at most 5 MB; no validation set.",),
    ),
    ModelEntry(
        model_id="cohere.command-light-text-v14:7:4k",
        aliases=("cohere.command-light-text-v14",),
        provider="Cohere",
        name="Command Light",
        input_modalities=TEXT,
        output_modalities=TEXT,
        context_window=4_000,
        customizations=(
            Customization(FINE_TUNING, (US_EAST_1,), COHERE_COMMAND_LIMITS, limits_source=SOURCE_COHERE_DATA),
        ),
        hyperparameters=COHERE_HYPERPARAMETERS,
        serving=PROVISIONED_ONLY,
        license=LICENSE_COHERE,
        lifecycle=LIFECYCLE_COHERE_DEPRECATED,
        lifecycle_source=SOURCE_COHERE_LIFECYCLE,
        notes=(
            "Cohere deprecated fine-tuning on 2025-09-15: new customers cannot start jobs, existing ones "
            "until Cohere's shutdown date; Bedrock's newest fine-tuning table dropped the model too.",
            "The output (completion) is limited to 2,048 tokens on its own.",
        ),
    ),
)

# --------------------------------------------------------------------------------------------------
# Look-ups
# --------------------------------------------------------------------------------------------------

_BY_IDENTIFIER: dict[str, ModelEntry] = {
    identifier: entry for entry in CATALOG for identifier in entry.identifiers
}

# Every key some model takes: tells "this model takes no such key" from "no model knows this key".
ALL_HYPERPARAMETER_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys(spec.key for entry in CATALOG for spec in entry.hyperparameters)
)


def find_model(identifier: str) -> ModelEntry | None:
    """The entry one of whose identifiers is exactly `identifier` (case-sensitive, like Bedrock)."""
    return _BY_IDENTIFIER.get(identifier)


def suggest_models(identifier: str, n: int = 3) -> list[str]:
    """Up to `n` canonical model ids closest to `identifier`: the same model with another context
    suffix first, then ids containing it, then difflib's."""
    ids = [entry.model_id for entry in CATALOG]
    wanted = identifier.strip().lower()
    if not wanted:
        return []
    stem = names.without_context_suffix(wanted)
    same_model = [
        entry.model_id
        for entry in CATALOG
        if stem in {names.without_context_suffix(i.lower()) for i in entry.identifiers}
    ]
    # Substrings shorter than 4 characters ("x", "v1") match almost everything: not a suggestion.
    containing = [model_id for model_id in ids if len(wanted) >= 4 and wanted in model_id.lower()]
    close = difflib.get_close_matches(wanted, [i.lower() for i in ids], n=n, cutoff=0.4)
    by_lower = {model_id.lower(): model_id for model_id in ids}
    ranked = [*same_model, *containing, *(by_lower[c] for c in close)]
    return list(dict.fromkeys(ranked))[:n]
