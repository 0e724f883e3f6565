"""The baseline for `make bench`: the smallest useful CDK app (one bucket), synthesized the same way."""

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

app = cdk.App()
stack = cdk.Stack(app, "Minimal", env=cdk.Environment(region="us-west-2"))
s3.Bucket(stack, "Bucket")
app.synth()
