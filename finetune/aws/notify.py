"""Telling people: one publish to the fine-tuning's SNS topic (the e-mail subscriptions)."""

from __future__ import annotations

import re
from typing import Any

from finetune.aws.log import log_error
from finetune.core.names import MAX_SNS_SUBJECT_CHARS


def subject_line(text: str) -> str:
    """An SNS subject: printable ASCII, at most 100 characters."""
    return re.sub(r"[^\x20-\x7e]", "?", text)[:MAX_SNS_SUBJECT_CHARS]


def publish(sns: Any, topic_arn: str | None, subject: str, message: str) -> bool:
    """Publish; a notification that cannot be sent is logged, never raised: the work it reports is
    done, and a retry could not undo it (it would only repeat the notice)."""
    if not topic_arn:
        log_error("not-notified", reason="no topic configured", subject=subject)
        return False
    try:
        sns.publish(TopicArn=topic_arn, Subject=subject_line(subject), Message=message)
    except Exception as error:  # a lost e-mail must not fail or undo the work
        log_error("notify-failed", topic=topic_arn, subject=subject, error=f"{type(error).__name__}: {error}")
        return False
    return True
