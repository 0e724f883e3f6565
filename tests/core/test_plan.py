"""finetune.core.plan: what synth decides per stack, and what it warns about."""

from __future__ import annotations

import copy

from finetune.core.config import parse_config
from finetune.core.plan import plan_app
from tests.conftest import DATA_ROOT, sample_context


def plan_warnings(context: dict[str, object]) -> list[str]:
    _plans, warnings = plan_app(parse_config(context, DATA_ROOT), DATA_ROOT)
    return warnings


def test_serving_settings_without_effect_and_models_that_may_be_gone_are_warned_about() -> None:
    context = copy.deepcopy(sample_context())
    context["fine_tunings"]["support-assistant"]["serving"] = {"mode": "none", "model_units": 2}
    context["fine_tunings"]["sql-generator"]["base_model"] = "amazon.titan-text-express-v1:0:8k"
    warnings = plan_warnings(context)
    assert (
        "fine_tunings.support-assistant.serving.model_units: 2 has no effect with serving.mode 'none' "
        "(it applies to provisioned throughput only)"
    ) in warnings
    assert any(
        warning.startswith("fine_tunings.sql-generator.base_model: Titan Text G1 - Express is dropped")
        for warning in warnings
    ), warnings
    # Once per environment's configuration is enough: a shared setting is warned about once.
    assert len(warnings) == len(set(warnings))
