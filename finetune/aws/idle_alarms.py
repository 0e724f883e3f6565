"""One CloudWatch alarm per provisioned throughput: no invocation for `idle_alarm_hours` hours
(a PT bills every hour whether it serves or not). A temporary PT of the evaluation gate gets one
too, after TEMPORARY_IDLE_HOURS: its evaluation invokes it, then the gate deletes it, so two idle
hours mean the gate is not getting on (the gate's own `max_hours` limit deletes it in any case)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finetune.aws.endpoints import Throughput
from finetune.core import names
from finetune.core.contracts import ServingResource


def existing_alarms(cloudwatch: Any, environment: str, fine_tuning: str) -> set[str]:
    found: set[str] = set()
    token: str | None = None
    while True:
        response = cloudwatch.describe_alarms(
            AlarmNamePrefix=names.alarm_name_prefix(environment, fine_tuning),
            AlarmTypes=["MetricAlarm"],
            **({"NextToken": token} if token else {}),
        )
        found |= {
            alarm["AlarmName"]
            for alarm in response.get("MetricAlarms", [])
            if names.owns_alarm_name(environment, fine_tuning, alarm["AlarmName"])
        }
        token = response.get("NextToken")
        if not token:
            return found


TEMPORARY_IDLE_HOURS = 2


def idle_alarm_request(
    spec: ServingResource, throughput: Throughput, *, temporary: bool = False
) -> dict[str, Any]:
    """PutMetricAlarm arguments: no invocation of the PT for `idle_alarm_hours` whole hours (a
    temporary one: TEMPORARY_IDLE_HOURS)."""
    hours = TEMPORARY_IDLE_HOURS if temporary else spec.settings.idle_alarm_hours
    advice = (
        "It is the evaluation gate's temporary endpoint, deleted once its evaluation is scored or "
        "after evaluation.max_hours: check the serving function's log and the trial's SSM record."
        if temporary
        else "It bills every hour while it exists: delete it (serving.mode 'none') if unused."
    )
    return {
        "AlarmName": names.alarm_name(spec.environment, spec.fine_tuning, throughput.arn),
        "AlarmDescription": (
            f"Provisioned throughput {throughput.name} ({throughput.arn}) had no invocation for {hours} "
            f"hours. {advice}"
        ),
        "Namespace": "AWS/Bedrock",
        "MetricName": "Invocations",
        "Dimensions": [{"Name": "ModelId", "Value": throughput.arn}],
        "Statistic": "Sum",
        "Period": 3600,
        "EvaluationPeriods": hours,
        "DatapointsToAlarm": hours,
        "Threshold": 0.0,
        "ComparisonOperator": "LessThanOrEqualToThreshold",
        "TreatMissingData": "breaching",  # an unused PT publishes no datapoint at all
        "ActionsEnabled": True,
        "AlarmActions": [spec.topic_arn] if spec.topic_arn else [],
        "Tags": [
            {"Key": key, "Value": value}
            for key, value in sorted(names.resource_tags(spec.environment, spec.fine_tuning).items())
        ],
    }


def sync_alarms(
    cloudwatch: Any, spec: ServingResource, kept: Sequence[Throughput], temporary: Sequence[Throughput] = ()
) -> list[str]:
    """One idle alarm per remaining PT (`temporary`: the gate's); alarms of PTs that are gone are
    deleted. Returns the changes."""
    changes: list[str] = []
    existing = existing_alarms(cloudwatch, spec.environment, spec.fine_tuning)
    wanted = set()
    for throughput, is_temporary in [*((t, False) for t in kept), *((t, True) for t in temporary)]:
        request = idle_alarm_request(spec, throughput, temporary=is_temporary)
        cloudwatch.put_metric_alarm(**request)
        wanted.add(request["AlarmName"])
        if request["AlarmName"] not in existing:
            changes.append(f"idle alarm {request['AlarmName']} created for {throughput.name}")
    stale = sorted(existing - wanted)
    if stale:
        cloudwatch.delete_alarms(AlarmNames=stale)
        changes += [f"idle alarm {name} deleted" for name in stale]
    return changes
