"""The AWS edge both sides use: the Slack side (bot/) and the workers (workers/).

- `sessions`: the one place that builds boto3 sessions — a named profile's, or one that assumes the
  access policy's role from it with credentials botocore refreshes before they expire.
- `configs`: the named botocore `Config`s, every one in the standard retry mode.
- `terraform_lock`: the one reader (and conditional deleter) of Terraform's DynamoDB lock item.

It imports `core` only (for models); `core` never imports it.
"""
