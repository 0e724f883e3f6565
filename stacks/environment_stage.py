"""`EnvironmentStage`: one environment, one stack per fine-tuning (`cdk deploy 'dev/*'`)."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from constructs import Construct

from finetune.core.config import EnvironmentConfig
from finetune.core.plan import FineTuningPlan
from stacks.fine_tuning_stack import FineTuningStack


class EnvironmentStage(cdk.Stage):
    """A `cdk.Stage` named after the environment holding a `FineTuningStack` per fine-tuning.

    Stacks are named `<environment>-<fine-tuning>` in CloudFormation and selected as
    `<environment>/<fine-tuning>` by the CDK CLI. Each stack deploys to its fine-tuning's region
    (default: the environment's) and to the environment's account (default: the CLI's account).
    Every resource is tagged `finetune:environment`, `finetune:fine-tuning` and `finetune:stack`.
    """

    def __init__(
        self,
        scope: Construct,
        environment: EnvironmentConfig,
        plans: Sequence[FineTuningPlan],
        *,
        default_account: str | None = None,
    ) -> None:
        account = environment.account or default_account
        super().__init__(
            scope, environment.name, env=cdk.Environment(account=account, region=environment.region)
        )
        self.stacks: dict[str, FineTuningStack] = {}
        for plan in plans:
            config = plan.config
            stack = FineTuningStack(
                self,
                config.name,
                plan=plan,
                env=cdk.Environment(account=account, region=config.region),
            )
            for key, value in config.tags().items():
                cdk.Tags.of(stack).add(key, value)
            self.stacks[config.name] = stack
