"""Operations on AWS through injected boto3 clients: customization jobs, serving, data staging.
Imports `finetune.core` and botocore only; runs in Lambda and in the CLI."""
