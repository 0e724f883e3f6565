"""Domain logic of the Bedrock fine-tuning stack.

Plain, typed Python (stdlib + boto3 only, never aws_cdk), so the very same code runs at synth time
(`app.py`), in the CLI (`python -m finetune`) and inside the Lambda functions the stacks deploy.
"""
