"""Record rules of the training-data validator: one checker per `DataFormat`.

A checker takes one parsed record (a dict), appends `(severity, message)` pairs to
`context.problems` and returns the record's text characters (what its token estimate is made of).
Each checker tests the valid case first with a handful of look-ups and only then works out what is
wrong: the validator calls it once per line of files with millions of lines.

Messages name the field (`messages[2].role`), say what is wrong and what is accepted.

Unknown top-level fields, per format:
- prompt-completion, continued pre-training, image-caption: **warning**. The user guide lists the
  fields a record has but does not say other fields are rejected; a stray field is usually harmless
  metadata (an "id") or a misspelling, and a misspelled required field is already an error (it is
  then missing).
- Claude messages: **error**, in the record and in each message. Anthropic's guide to fine-tuning
  Claude 3 Haiku on Bedrock says "No extraneous keys are allowed" (anthropic-cookbook,
  finetuning/finetuning_on_bedrock.ipynb).
- Converse (bedrock-conversation-2024): **error**. The record is a Converse API request, a closed
  schema (the API rejects unknown members), so an unknown field means a record of another format
  (e.g. "prompt", or OpenAI-style messages) or a feature the job does not take (e.g. "toolConfig").
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from finetune.core.formats import (
    CHARS_PER_TOKEN,
    DENSE_CHARS_PER_TOKEN,
    TOKEN_ESTIMATE_METHOD,
    DataFormat,
    DatasetLimits,
    dense_estimate_tokens,
    estimate_tokens,
)
from finetune.core.names import INCOMING_PREFIX, MEDIA_PREFIX

Severity = Literal["error", "warning"]
Problems = list[tuple[Severity, str]]

CONVERSE_SCHEMA_VERSION = "bedrock-conversation-2024"
# The schemaVersion values the guides show: the Bedrock user guide's, and the Nova guide's for tool-use
# fine-tuning data. The Nova guide ("Preparing data for fine-tuning Understanding models") says
# schemaVersion may be any string, so another value is only a warning (most likely a typo).
KNOWN_SCHEMA_VERSIONS = (CONVERSE_SCHEMA_VERSION, "tooluse-dataset-2024")
# Titan Image Generator and Titan Multimodal Embeddings read PNG and JPEG images.
IMAGE_REF_EXTENSIONS = (".png", ".jpg", ".jpeg")
ROLE_RULE = "(roles alternate, starting with user, ending with assistant)"
ROLE_RULE_RESPONSE_OPTIONAL = "(roles alternate, starting with user; the assistant's response is optional)"
SINGLE_PROMPT_RULE = (
    'one "user" prompt, optionally followed by the "assistant" response: this student takes '
    "single-turn prompts only"
)

_MISSING: Any = object()
_NOT_A_MESSAGE: Any = object()  # the role of a message that is not an object (already reported)


@dataclass(frozen=True)
class MediaLocation:
    """Where the images and videos that records name must be: under `prefix` of the stack's training
    bucket, the only place its Bedrock role reads them from. `bucket` None: the file is local (synth,
    `validate ENV FINE_TUNING`), and the bucket's name is generated at the first deploy, so no URI a
    local file holds can be right."""

    bucket: str | None
    prefix: str = MEDIA_PREFIX

    def problem(self, uri: str) -> str | None:
        """Why the media at `uri` (an s3://bucket/key URI) cannot be read by the job, or None."""
        if self.bucket is None:
            return (
                "images and videos cannot be deployed from a local file: they must be in the stack's "
                f"training bucket under {self.prefix}, whose name is generated at the first deploy; "
                f"copy them to s3://TRAINING_BUCKET/{self.prefix} and upload this file under "
                f'{INCOMING_PREFIX} instead (README, "Images and videos")'
            )
        bucket, _, key = uri[5:].partition("/")
        if bucket != self.bucket or not key.startswith(self.prefix):
            return (
                f'"{uri[:100]}" is not under s3://{self.bucket}/{self.prefix}: images and videos must '
                f"be in the dataset's bucket, under {self.prefix}, where the job's role reads them"
            )
        return None


LOCAL_FILE = MediaLocation(bucket=None)


@dataclass
class RecordContext:
    """What the checkers need besides the record; one per file."""

    limits: DatasetLimits
    media_location: MediaLocation | None = None  # where media must be (None: not checked)
    media_location_reported: bool = False  # a local file's media are refused once, not per record
    problems: Problems = field(default_factory=list)
    # First Converse record with media, to tell a dataset that mixes images and videos.
    media_kind: str | None = None
    media_line: int = 0
    # `limits.reserved_keywords` as one pattern (None: nothing is reserved), searched once per text.
    reserved: re.Pattern[str] | None = field(init=False, default=None)
    # `limits.completion_max_tokens` in characters, and where its warning band starts (beyond any
    # text when there is no such limit, so the checker makes one comparison either way).
    completion_max_chars: int = field(init=False, default=sys.maxsize)
    completion_warn_chars: int = field(init=False, default=sys.maxsize)

    def __post_init__(self) -> None:
        completion_limit = self.limits.completion_max_tokens
        if completion_limit is not None:
            self.completion_max_chars = completion_limit * CHARS_PER_TOKEN
            self.completion_warn_chars = completion_limit * DENSE_CHARS_PER_TOKEN
        keywords = self.limits.reserved_keywords
        if keywords:
            self.reserved = re.compile("|".join(re.escape(keyword) for keyword in keywords))

    def check_reserved(self, text: str, path: str) -> None:
        """An error for each reserved keyword in a prompt's `text` at `path` (first occurrence each)."""
        if self.reserved is None:
            return
        found = list(dict.fromkeys(match.group() for match in self.reserved.finditer(text)))
        if found:
            plural = "s" if len(found) > 1 else ""
            self.error(
                f"{path}: contains the reserved keyword{plural} {_quoted(found)}: "
                f"{self.limits.reserved_keywords_reason}; reword the prompt without "
                f"{_quoted(self.limits.reserved_keywords)}"
            )

    def error(self, message: str) -> None:
        self.problems.append(("error", message))

    def warning(self, message: str) -> None:
        self.problems.append(("warning", message))


Checker = Callable[[dict[str, Any], RecordContext, int], int]


def near_token_limit_message(what: str, chars: int, max_tokens: int, limit_for: str = "") -> str:
    """The warning for a text inside a token limit by the estimate but over it at the dense rate."""
    estimate = estimate_tokens(chars)
    share = estimate * 100 // max_tokens
    return (
        f"{what} is about {estimate:,} tokens ({chars:,} characters), {share}% of the {max_tokens:,}-token "
        f"limit{limit_for}: that estimate is {TOKEN_ESTIMATE_METHOD}, but technical text and code run near "
        f"{DENSE_CHARS_PER_TOKEN} characters per token, which would make it about "
        f"{dense_estimate_tokens(chars):,} tokens, over the limit; Bedrock counts with the model's tokenizer "
        "and may reject the job, so shorten or split it if it is dense text"
    )


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _quoted(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _text(
    context: RecordContext, container: dict[str, Any], key: str, path: str, *, allow_empty: bool = False
) -> int:
    """Check a required string field; its length in characters (0 when wrong)."""
    value = container.get(key, _MISSING)
    if value is _MISSING:
        context.error(f"{path}: missing (required: a non-empty string)")
    elif type(value) is not str:
        context.error(f"{path}: expected a string, got {json_type(value)}")
    elif not value and not allow_empty:
        context.error(f"{path}: empty; a non-empty string is required")
    else:
        return len(value)
    return 0


def _unknown_fields(
    context: RecordContext,
    container: dict[str, Any],
    allowed: tuple[str, ...],
    where: str,
    severity: Severity,
    reason: str = "",
) -> None:
    unknown = [key for key in container if key not in allowed]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        context.problems.append(
            (
                severity,
                f"{where}unknown field{plural} {_quoted(unknown)}: accepted fields are {_quoted(allowed)}{reason}",
            )
        )


def _s3_uri_problem(uri: object) -> str | None:
    """Why `uri` is not an `s3://bucket/key` URI, or None."""
    if type(uri) is not str:
        return f"expected an S3 URI string (s3://bucket/key), got {json_type(uri)}"
    if not uri.startswith("s3://"):
        return f'expected an S3 URI (s3://bucket/key), got "{uri[:100]}"'
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        return f'expected an S3 URI with a bucket and a key (s3://bucket/key), got "{uri[:100]}"'
    return None


def _list_field(context: RecordContext, record: dict[str, Any], key: str, what: str) -> list[Any] | None:
    value = record.get(key, _MISSING)
    if value is _MISSING:
        context.error(f"{key}: missing (required: {what})")
    elif type(value) is not list:
        context.error(f"{key}: expected {what}, got {json_type(value)}")
    elif not value:
        context.error(f"{key}: empty; expected {what}")
    else:
        return value
    return None


def _check_role_order(context: RecordContext, roles: list[Any]) -> None:
    """Roles alternate user/assistant, starting with user and ending with assistant (first problem only).

    With `limits.response_optional` (distillation prompts) the last turn may be the user's; with
    `limits.single_user_prompt` there is one user turn at most.
    """
    limits = context.limits
    rule = ROLE_RULE_RESPONSE_OPTIONAL if limits.response_optional else ROLE_RULE
    for index, role in enumerate(roles):
        expected = "assistant" if index % 2 else "user"
        if role == expected:
            continue
        path = f"messages[{index}].role"
        if role is _NOT_A_MESSAGE:
            return
        if role is _MISSING:
            context.error(f'{path}: missing (expected "{expected}") {rule}')
        elif role not in ("user", "assistant"):
            hint = ' (the system prompt goes in the top-level "system" field)' if role == "system" else ""
            shown = f'"{role}"' if type(role) is str else json_type(role)
            context.error(f'{path}: expected "user" or "assistant", got {shown}{hint}')
        elif index == 0:
            context.error(f'{path}: expected "user" first, got "{role}" {rule}')
        else:
            context.error(f'{path}: expected "{expected}" after "{roles[index - 1]}" {rule}')
        return
    if limits.single_user_prompt and len(roles) > 2:
        context.error(
            f'messages[2].role: a second "user" prompt; expected {SINGLE_PROMPT_RULE} (Bedrock user '
            'guide, "Option 1: Provide your own prompts for data preparation")'
        )
    elif len(roles) % 2 and not limits.response_optional:
        last = len(roles) - 1
        context.error(f'messages[{last}].role: the last message must be from "assistant", got "user" {rule}')


# --------------------------------------------------------------------------------------------------
# prompt/completion and continued pre-training
# --------------------------------------------------------------------------------------------------

_PROMPT_COMPLETION_FIELDS = ("prompt", "completion")


def check_prompt_completion(record: dict[str, Any], context: RecordContext, line: int) -> int:
    """`{"prompt": str, "completion": str}`, both non-empty; the completion within
    `limits.completion_max_tokens` when the model limits the output on its own."""
    prompt = record.get("prompt")
    completion = record.get("completion")
    if type(prompt) is str and type(completion) is str and prompt and completion and len(record) == 2:
        if len(completion) > context.completion_warn_chars:
            _check_completion_tokens(context, len(completion))
        return len(prompt) + len(completion)
    completion_chars = _text(context, record, "completion", "completion")
    chars = _text(context, record, "prompt", "prompt") + completion_chars
    if completion_chars > context.completion_warn_chars:
        _check_completion_tokens(context, completion_chars)
    _unknown_fields(context, record, _PROMPT_COMPLETION_FIELDS, "", "warning")
    return chars


def _check_completion_tokens(context: RecordContext, chars: int) -> None:
    """Called past the warning band, which exists only with `limits.completion_max_tokens`."""
    limit = context.limits.completion_max_tokens or 0
    if chars > context.completion_max_chars:
        context.error(
            f"completion: about {estimate_tokens(chars):,} tokens ({chars:,} characters); at most "
            f"{limit:,} output tokens are accepted for this model"
        )
    else:
        context.warning(near_token_limit_message("completion", chars, limit, " for the output"))


def check_continued_pre_training(record: dict[str, Any], context: RecordContext, line: int) -> int:
    """`{"input": str}`, non-empty."""
    text = record.get("input")
    if type(text) is str and text and len(record) == 1:
        return len(text)
    chars = _text(context, record, "input", "input")
    _unknown_fields(context, record, ("input",), "", "warning")
    return chars


# --------------------------------------------------------------------------------------------------
# image/caption
# --------------------------------------------------------------------------------------------------

_IMAGE_CAPTION_FIELDS = ("image-ref", "caption")


def check_image_caption(record: dict[str, Any], context: RecordContext, line: int) -> int:
    """`{"image-ref": "s3://bucket/key.png", "caption": str}`, caption length within the limits."""
    limits = context.limits
    minimum = limits.caption_min_chars if limits.caption_min_chars is not None else 1
    maximum = limits.caption_max_chars
    caption = record.get("caption", _MISSING)
    chars = _text(context, record, "caption", "caption", allow_empty=minimum == 0)
    if type(caption) is str and (caption or minimum == 0):
        if len(caption) < minimum:
            context.error(f"caption: {len(caption):,} characters; at least {minimum:,} are required")
        elif maximum is not None and len(caption) > maximum:
            context.error(f"caption: {len(caption):,} characters; at most {maximum:,} are accepted")
    reference = record.get("image-ref", _MISSING)
    if reference is _MISSING:
        context.error('image-ref: missing (required: the image\'s S3 URI, "s3://bucket/key.png")')
    else:
        problem = _s3_uri_problem(reference)
        if problem is not None:
            context.error(f"image-ref: {problem}")
        elif not reference.lower().endswith(IMAGE_REF_EXTENSIONS):
            context.warning(
                f"image-ref: {reference[-60:]!r} does not end in {', '.join(IMAGE_REF_EXTENSIONS)}; "
                "images must be PNG or JPEG"
            )
        if problem is None:
            _check_media_location(context, reference, "image-ref")
    if len(record) != 2 or "caption" not in record or "image-ref" not in record:
        _unknown_fields(context, record, _IMAGE_CAPTION_FIELDS, "", "warning")
    return chars


# --------------------------------------------------------------------------------------------------
# Claude 3 messages
# --------------------------------------------------------------------------------------------------

_CLAUDE_FIELDS = ("system", "messages")
_MESSAGE_FIELDS = ("role", "content")
_CLAUDE_NO_EXTRA_KEYS = (
    ' (Anthropic\'s guide to fine-tuning Claude 3 Haiku on Bedrock: "No extraneous keys are allowed"; '
    "remove the field, or keep such metadata outside the training file)"
)


def check_claude_messages(record: dict[str, Any], context: RecordContext, line: int) -> int:
    """`{"system"?: str, "messages": [{"role": "user"|"assistant", "content": str}, ...]}`."""
    chars = 0
    known = 0
    system = record.get("system", _MISSING)
    if system is not _MISSING:
        known = 1
        if type(system) is str:
            chars = len(system)
        else:
            context.error(
                f"system: expected a string (the system prompt), got {json_type(system)}; "
                "leave the field out for no system prompt"
            )
    messages = _list_field(context, record, "messages", 'an array of {"role", "content"} messages')
    if messages is not None:
        known += 1
        roles: list[Any] = []
        for index, message in enumerate(messages):
            if type(message) is not dict:
                context.error(
                    f'messages[{index}]: expected an object {{"role": ..., "content": "..."}}, '
                    f"got {json_type(message)}"
                )
                roles.append(_NOT_A_MESSAGE)
                continue
            roles.append(message.get("role", _MISSING))
            content = message.get("content")
            if type(content) is str and content:
                chars += len(content)
            else:
                path = f"messages[{index}].content"
                if type(content) is list:
                    context.error(f"{path}: expected a string, got an array (Claude 3 data takes plain text)")
                else:
                    chars += _text(context, message, "content", path)
            if len(message) != 2:
                _unknown_fields(
                    context, message, _MESSAGE_FIELDS, f"messages[{index}]: ", "error", _CLAUDE_NO_EXTRA_KEYS
                )
        _check_role_order(context, roles)
    elif "messages" in record:
        known += 1
    if len(record) != known:
        _unknown_fields(context, record, _CLAUDE_FIELDS, "", "error", _CLAUDE_NO_EXTRA_KEYS)
    return chars


# --------------------------------------------------------------------------------------------------
# Converse (bedrock-conversation-2024)
# --------------------------------------------------------------------------------------------------

_CONVERSE_FIELDS = ("schemaVersion", "system", "messages")
_CONVERSE_BLOCKS = '"text", "image" or "video" (user turns), "reasoningContent" (assistant turns)'


def check_converse(record: dict[str, Any], context: RecordContext, line: int) -> int:
    """`{"schemaVersion": "bedrock-conversation-2024", "system"?: [{"text"}], "messages": [...]}`.

    Messages alternate user/assistant (first user, last assistant); content is a list of blocks:
    `{"text"}`, `{"image"}`/`{"video"}` (user turns; `source.s3Location.uri` an S3 URI; only the
    kinds and `format` values in `limits.image_formats`/`video_formats`, which follow the model's
    input modalities) or `{"reasoningContent"}` (assistant turns, Nova 2). Per record at most
    `limits.max_images_per_record` images, at most one video, not both; a dataset does not mix images
    and videos (Nova guide, "Dataset constraints").
    """
    chars = 0
    version = record.get("schemaVersion", _MISSING)
    if version != CONVERSE_SCHEMA_VERSION and version not in KNOWN_SCHEMA_VERSIONS:
        if version is _MISSING:
            context.error(f'schemaVersion: missing (required: "{CONVERSE_SCHEMA_VERSION}")')
        elif type(version) is not str:
            context.error(f'schemaVersion: expected "{CONVERSE_SCHEMA_VERSION}", got {json_type(version)}')
        else:
            context.warning(
                f'schemaVersion: "{version[:60]}"; the documented values are {_quoted(KNOWN_SCHEMA_VERSIONS)}'
            )
    system = record.get("system", _MISSING)
    if system is not _MISSING:
        if type(system) is not list:
            context.error(f'system: expected an array of {{"text": "..."}} blocks, got {json_type(system)}')
        else:
            for index, block in enumerate(system):
                text = block.get("text") if type(block) is dict else None
                if type(text) is str and text and len(block) == 1:
                    chars += len(text)
                    if context.reserved is not None:
                        context.check_reserved(text, f"system[{index}].text")
                elif type(block) is not dict:
                    context.error(
                        f'system[{index}]: expected an object {{"text": "..."}}, got {json_type(block)}'
                    )
                else:
                    chars += _text(context, block, "text", f"system[{index}].text")
                    _unknown_fields(context, block, ("text",), f"system[{index}]: ", "error")
    messages = _list_field(context, record, "messages", 'an array of {"role", "content": [...]} messages')
    if messages is not None:
        chars += _converse_messages(context, messages, line)
    if len(record) > 3 or any(key not in _CONVERSE_FIELDS for key in record):
        _unknown_fields(context, record, _CONVERSE_FIELDS, "", "error")
    return chars


def _converse_messages(context: RecordContext, messages: list[Any], line: int) -> int:
    chars = 0
    images = 0
    videos = 0
    roles: list[Any] = []
    for index, message in enumerate(messages):
        if type(message) is not dict:
            context.error(
                f'messages[{index}]: expected an object {{"role": ..., "content": [...]}}, got {json_type(message)}'
            )
            roles.append(_NOT_A_MESSAGE)
            continue
        role = message.get("role", _MISSING)
        roles.append(role)
        content = message.get("content", _MISSING)
        path = f"messages[{index}].content"
        if type(content) is not list or not content:
            if content is _MISSING:
                context.error(
                    f'{path}: missing (required: an array of content blocks, e.g. [{{"text": "..."}}])'
                )
            elif type(content) is str:
                context.error(
                    f'{path}: expected an array of content blocks, got a string (write [{{"text": "..."}}])'
                )
            elif type(content) is list:
                context.error(f"{path}: empty; expected at least one content block")
            else:
                context.error(f"{path}: expected an array of content blocks, got {json_type(content)}")
        else:
            for block_index, block in enumerate(content):
                if type(block) is dict and len(block) == 1:
                    text = block.get("text")
                    if type(text) is str and text:
                        chars += len(text)
                        if context.reserved is not None and role == "user":
                            context.check_reserved(text, f"{path}[{block_index}].text")
                        continue
                block_chars, kind = _converse_block(context, block, f"{path}[{block_index}]", role)
                chars += block_chars
                if kind == "image":
                    images += 1
                elif kind == "video":
                    videos += 1
        if len(message) != 2:
            _unknown_fields(context, message, _MESSAGE_FIELDS, f"messages[{index}]: ", "error")
    _check_role_order(context, roles)
    if images or videos:
        _check_media_counts(context, images, videos, line)
    return chars


def _converse_block(context: RecordContext, block: Any, path: str, role: Any) -> tuple[int, str | None]:
    """Check one content block that is not a plain non-empty text block: (its characters, media kind)."""
    if type(block) is not dict:
        context.error(f"{path}: expected a content block object ({_CONVERSE_BLOCKS}), got {json_type(block)}")
        return 0, None
    keys = list(block)
    if len(keys) != 1:
        context.error(
            f"{path}: a content block has exactly one of {_CONVERSE_BLOCKS}, got "
            + (_quoted(keys) if keys else "an empty object")
        )
        return 0, None
    kind = keys[0]
    if kind == "text":
        return _text(context, block, "text", f"{path}.text"), None
    if kind in ("image", "video"):
        formats = context.limits.image_formats if kind == "image" else context.limits.video_formats
        if not formats:
            context.error(f"{path}: {kind} blocks are not accepted: {_media_accepted(context.limits)}")
            return 0, None
        if role != "user":
            context.error(f'{path}: {kind} blocks are accepted in "user" turns only')
        _converse_media(context, block[kind], f"{path}.{kind}", kind, formats)
        return 0, kind
    if kind == "reasoningContent":
        if role != "assistant":
            context.error(f'{path}: reasoningContent blocks are accepted in "assistant" turns only')
        reasoning = block[kind]
        text = reasoning.get("reasoningText") if type(reasoning) is dict else None
        if type(text) is not dict or type(text.get("text")) is not str:
            context.error(f'{path}.reasoningContent: expected {{"reasoningText": {{"text": "..."}}}}')
            return 0, None
        return len(text["text"]), None
    context.error(f'{path}: unknown content block "{kind}"; accepted: {_CONVERSE_BLOCKS}')
    return 0, None


def _media_accepted(limits: DatasetLimits) -> str:
    """What media the model and customization type take, for the message that refuses the others."""
    if limits.image_formats:
        return "this model and customization type take images, not videos"
    if limits.video_formats:
        return "this model and customization type take videos, not images"
    return "this model and customization type take text only"


def _converse_media(
    context: RecordContext, media: Any, path: str, kind: str, formats: tuple[str, ...]
) -> None:
    shape = f'{{"format": {" | ".join(formats)}, "source": {{"s3Location": {{"uri": "s3://..."}}}}}}'
    if type(media) is not dict:
        context.error(f"{path}: expected {shape}, got {json_type(media)}")
        return
    media_format = media.get("format", _MISSING)
    if media_format not in formats:
        shown = "missing" if media_format is _MISSING else f"got {json_type(media_format)}"
        if type(media_format) is str:
            shown = f'got "{media_format[:40]}"'
        context.error(f"{path}.format: expected one of {_quoted(formats)}, {shown}")
    source = media.get("source")
    location = source.get("s3Location") if type(source) is dict else None
    if type(location) is not dict or "uri" not in location:
        context.error(f'{path}.source: expected {{"s3Location": {{"uri": "s3://bucket/key"}}}}')
        return
    uri = location["uri"]
    problem = _s3_uri_problem(uri)
    if problem is not None:
        context.error(f"{path}.source.s3Location.uri: {problem}")
        return
    _check_media_location(context, uri, f"{path}.source.s3Location.uri")


def _check_media_location(context: RecordContext, uri: str, path: str) -> None:
    location = context.media_location
    problem = None if location is None else location.problem(uri)
    if problem is None or (
        location is not None and location.bucket is None and context.media_location_reported
    ):
        return
    context.media_location_reported = True
    context.error(f"{path}: {problem}")


def _check_media_counts(context: RecordContext, images: int, videos: int, line: int) -> None:
    maximum = context.limits.max_images_per_record
    if maximum is not None and images > maximum:
        context.error(f"{images} images in this record; at most {maximum} are accepted per record")
    if videos > 1:
        context.error(f"{videos} videos in this record; at most one video is accepted per record")
    if images and videos:
        context.error("images and videos in one record; a record (and a dataset) has one or the other")
        return
    kind = "image" if images else "video"
    if context.media_kind is None:
        context.media_kind = kind
        context.media_line = line
    elif context.media_kind != kind:
        context.error(
            f"{kind}s in a dataset with {context.media_kind}s (first at line {context.media_line}); "
            "a dataset has either images or videos, not both"
        )


CHECKERS: dict[DataFormat, Checker] = {
    DataFormat.PROMPT_COMPLETION: check_prompt_completion,
    DataFormat.CONTINUED_PRE_TRAINING: check_continued_pre_training,
    DataFormat.CLAUDE_MESSAGES: check_claude_messages,
    DataFormat.CONVERSE: check_converse,
    DataFormat.IMAGE_CAPTION: check_image_caption,
}
