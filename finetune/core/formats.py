"""Training-data formats and dataset limits: the vocabulary shared by the catalog and the validator.

Sources: Bedrock user guide "Prepare your training datasets" (https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-prepare.html)
and the Nova guide "Dataset constraints".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class DataFormat(StrEnum):
    """The JSONL record shapes Bedrock accepts, one JSON object per line."""

    PROMPT_COMPLETION = "prompt-completion"  # {"prompt": str, "completion": str}
    CONTINUED_PRE_TRAINING = "continued-pre-training"  # {"input": str}
    CLAUDE_MESSAGES = "claude-messages"  # {"system"?: str, "messages": [{"role", "content": str}]}
    CONVERSE = "bedrock-conversation-2024"  # {"schemaVersion", "system": [...], "messages": [...]}
    IMAGE_CAPTION = "image-caption"  # {"image-ref": "s3://...", "caption": str}


# The user guide sizes text at about 6 characters per token; every estimate in this project uses it
# and says so, because no tokenizer of the base models can run offline.
CHARS_PER_TOKEN = 6
TOKEN_ESTIMATE_METHOD = f"characters / {CHARS_PER_TOKEN} (the Bedrock user guide's approximation)"


def estimate_tokens(characters: int) -> int:
    """Estimated tokens for a text of `characters` characters (rounded up)."""
    return math.ceil(characters / CHARS_PER_TOKEN)


# Technical text and code tokenize denser than the guide's 6 characters per token: chunks of AWS
# documentation measured about 4 (a Titan continued pre-training job failed with "Maximum input token
# count 4919 exceeds limit of 4096 for train data" for chunks the 6-character estimate put near 3,300;
# amazon-bedrock-workshop issues #224 and #270). A record over a token limit at this density is warned
# about: it is inside the limit by the estimate, yet Bedrock may count it over.
DENSE_CHARS_PER_TOKEN = 4


def dense_estimate_tokens(characters: int) -> int:
    """Tokens for a text of `characters` characters at the dense rate (rounded up)."""
    return math.ceil(characters / DENSE_CHARS_PER_TOKEN)


@dataclass(frozen=True)
class TokenLimit:
    """At most `max_tokens` per record when the batch size is within [batch_size_min, batch_size_max]."""

    max_tokens: int
    batch_size_min: int = 1
    batch_size_max: int | None = None  # None: no upper bound

    def applies_to(self, batch_size: int) -> bool:
        upper_ok = self.batch_size_max is None or batch_size <= self.batch_size_max
        return self.batch_size_min <= batch_size and upper_ok


@dataclass(frozen=True)
class DatasetLimits:
    """What one base model accepts as training (and validation) data for one customization type.

    Every bound is optional (None = not documented, so not enforced).
    """

    data_format: DataFormat
    min_records: int | None = None
    max_records: int | None = None
    # Per-record token limits; several entries when the limit depends on the batch size.
    token_limits: tuple[TokenLimit, ...] = ()
    # prompt/completion: a limit on the completion (the output) alone, when the model has one.
    completion_max_tokens: int | None = None
    max_file_bytes: int | None = None
    validation_allowed: bool = True
    validation_min_records: int | None = None
    validation_max_records: int | None = None
    validation_max_file_bytes: int | None = None
    # Caption length bounds (characters) for image/caption formats.
    caption_min_chars: int | None = None
    caption_max_chars: int | None = None
    # Converse media: the `format` values accepted in image and video blocks. Empty: that kind of
    # media is not accepted (a text-only model, or distillation, which is text to text).
    image_formats: tuple[str, ...] = ()
    video_formats: tuple[str, ...] = ()
    max_images_per_record: int | None = None
    # Converse distillation prompts: the assistant's response is optional (a record may end with the
    # user's prompt), and some students take a single user prompt only (no multi-turn records).
    response_optional: bool = False
    single_user_prompt: bool = False
    # Converse: words that fail the job anywhere in a user or system prompt, and the documented reason.
    reserved_keywords: tuple[str, ...] = ()
    reserved_keywords_reason: str = ""

    def max_tokens_for(self, batch_size: int | None) -> int | None:
        """The per-record token limit for a batch size (the strictest one when it is unknown)."""
        if not self.token_limits:
            return None
        if batch_size is None:
            return min(limit.max_tokens for limit in self.token_limits)
        matching = [limit.max_tokens for limit in self.token_limits if limit.applies_to(batch_size)]
        return min(matching) if matching else None


BATCH_SIZE_KEY = "batchSize"


def batch_size_of(hyperparameters: Mapping[str, object]) -> int | None:
    """The batch size the per-record token limit depends on (Bedrock's string or a number); None
    when it is not set or not a whole number."""
    value = hyperparameters.get(BATCH_SIZE_KEY)
    try:
        number = float(str(value))
    except ValueError:
        return None
    return int(number) if number.is_integer() else None
