"""What one line of a training file looks like, per data format: the rules in words and an example.

`python -m finetune models show ID` prints these for each customization type of the model. The rules
are the ones `finetune.core.dataset_rules` enforces (its field names, media formats and schema
version are imported from there, so the words cannot drift from the checks), and every example is a
record that validator accepts for every model of its format (tests/cli/test_models.py checks that).
Per-model bounds (record counts, tokens, caption length) are printed beside them from the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finetune.core.dataset_rules import CONVERSE_SCHEMA_VERSION, IMAGE_REF_EXTENSIONS
from finetune.core.formats import DataFormat

# The training bucket the examples name (a stack's bucket has a generated name).
EXAMPLE_BUCKET = "my-training-bucket"


@dataclass(frozen=True)
class RecordFormat:
    """One data format: its shape in one line, its rules, and an example record."""

    shape: str
    rules: tuple[str, ...]
    example: Mapping[str, Any]

    def example_line(self) -> str:
        """The example as one line of a JSONL file."""
        return json.dumps(self.example, ensure_ascii=False)


ALTERNATING = (
    'Messages alternate "user" and "assistant", starting with "user" and ending with "assistant" '
    "(the turn the model learns)."
)

RECORD_FORMATS: Mapping[DataFormat, RecordFormat] = {
    DataFormat.PROMPT_COMPLETION: RecordFormat(
        shape='{"prompt": string, "completion": string}',
        rules=(
            "Both fields are required and non-empty: the prompt is the input, the completion the "
            "answer the model learns to give.",
            "Other fields are reported as warnings (a misspelled field name is usually the cause).",
        ),
        example={
            "prompt": "Write a SQL query: the names of customers in Oslo, in alphabetical order.",
            "completion": "SELECT name FROM customers WHERE city = 'Oslo' ORDER BY name;",
        },
    ),
    DataFormat.CONTINUED_PRE_TRAINING: RecordFormat(
        shape='{"input": string}',
        rules=(
            "One non-empty field of unlabeled text from your domain; the model continues pre-training on it.",
            "Other fields are reported as warnings.",
        ),
        example={
            "input": "A router's status light turns red when the modem reports no carrier signal; "
            "restarting the modem first, then the router, restores the connection in most cases."
        },
    ),
    DataFormat.CLAUDE_MESSAGES: RecordFormat(
        shape='{"system"?: string, "messages": [{"role": "user" | "assistant", "content": string}, ...]}',
        rules=(
            '"system" (optional) is the system prompt, a string.',
            ALTERNATING,
            "Every content is a non-empty string (plain text; no content blocks).",
            "Other fields are reported as warnings.",
        ),
        example={
            "system": "You are the support assistant of Acme routers. Answer briefly.",
            "messages": [
                {"role": "user", "content": "The light on my router is red. What do I do?"},
                {
                    "role": "assistant",
                    "content": "A red light means no internet signal. Restart the modem, wait a "
                    "minute, then restart the router.",
                },
            ],
        },
    ),
    DataFormat.CONVERSE: RecordFormat(
        shape=(
            f'{{"schemaVersion": "{CONVERSE_SCHEMA_VERSION}", "system"?: [{{"text": string}}], '
            '"messages": [{"role": "user" | "assistant", "content": [content block, ...]}, ...]}'
        ),
        rules=(
            f'"schemaVersion" is "{CONVERSE_SCHEMA_VERSION}"; "system" (optional) is an array of '
            '{"text": string} blocks.',
            ALTERNATING,
            'Content is an array of blocks, each with exactly one key: {"text": string}; in user turns, '
            'for models that take media, {"image": {"format": ..., "source": {"s3Location": {"uri": '
            '"s3://..."}}}} or {"video": {...}} (the formats each model takes are listed with its data '
            'limits); in assistant turns {"reasoningContent": {"reasoningText": {"text": string}}}.',
            "Images and videos must be in the stack's training data bucket under media/, so a file "
            "with media is uploaded under incoming/, not deployed from training_data/; a record has "
            "images or one video, and a dataset has one kind or the other.",
            "Any other field is an error (the record is a Converse API request, a closed schema).",
        ),
        example={
            "schemaVersion": CONVERSE_SCHEMA_VERSION,
            "system": [{"text": "You are the support assistant of Acme routers. Answer briefly."}],
            "messages": [
                {"role": "user", "content": [{"text": "The light on my router is red. What do I do?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "text": "A red light means no internet signal. Restart the modem, wait a "
                            "minute, then restart the router."
                        }
                    ],
                },
            ],
        },
    ),
    DataFormat.IMAGE_CAPTION: RecordFormat(
        shape='{"image-ref": "s3://bucket/key.png", "caption": string}',
        rules=(
            '"image-ref" is the S3 URI of a PNG or JPEG image (a key ending in '
            f"{', '.join(IMAGE_REF_EXTENSIONS)}) in the stack's training data bucket under media/, so "
            "the file is uploaded under incoming/, not deployed from training_data/.",
            '"caption" describes the image; its length bounds are listed with the data limits.',
            "Other fields are reported as warnings.",
        ),
        example={
            "image-ref": f"s3://{EXAMPLE_BUCKET}/media/router-front.png",
            "caption": "The front of a white Acme router with its status light glowing red.",
        },
    ),
}
