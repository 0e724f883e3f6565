"""Reusable constructs of the Bedrock fine-tuning stack; each is usable alone in another CDK app."""

from cdk_constructs.bedrock_customization_role import BedrockCustomizationRole
from cdk_constructs.customization_job_trigger import CustomizationJobTrigger
from cdk_constructs.lambda_function import FinetuneFunction
from cdk_constructs.model_evaluation_role import ModelEvaluationRole, inference_profile_arns
from cdk_constructs.nag import acknowledge
from cdk_constructs.notification_topic import NotificationTopic
from cdk_constructs.serving_lifecycle import ServingLifecycle
from cdk_constructs.training_data_bucket import TrainingDataBucket
from cdk_constructs.training_data_upload import TrainingDataUpload, TrainingDataUploadFunction

__all__ = [
    "BedrockCustomizationRole",
    "CustomizationJobTrigger",
    "FinetuneFunction",
    "ModelEvaluationRole",
    "NotificationTopic",
    "ServingLifecycle",
    "TrainingDataBucket",
    "TrainingDataUpload",
    "TrainingDataUploadFunction",
    "acknowledge",
    "inference_profile_arns",
]
