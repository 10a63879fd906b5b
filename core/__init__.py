"""The rules and records of ecs-deploy-bot.

Everything here is plain Python over pydantic models: no Slack, no RQ, no AWS calls.
`bot` (the Slack edge) and `workers` (the RQ jobs and engines) import from here; this package
imports from neither.
"""
