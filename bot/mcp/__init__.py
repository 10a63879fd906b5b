"""`ecs-deploy-bot mcp`: the bot's read and request operations for AI assistants, over the Model
Context Protocol (the official `mcp` SDK), behind the same access policy as Slack.

- `settings`: ECS_DEPLOY_MCP_USER (whom a stdio client acts as) and ECS_DEPLOY_MCP_CHANNEL.
- `views`: the tools' typed inputs and outputs (pydantic), built from the records.
- `server`: the MCP server — tools, the `deployment://{id}` resource, the audit of every call.
- `environments`: list_environments, get_environment, get_drift, request_change, `environment://{key}`.
- `channels`: whether a request may be posted in the Slack channel it names; `arguments`, `caller`:
  what the tool modules share.
- `http`: the bearer-token ASGI middleware (401) around the SDK's streamable HTTP app, and uvicorn.

No tool approves, applies, destroys, cancels or unlocks: decisions stay with people in Slack. The
server enqueues the same jobs as the Slack side (by dotted path) and never runs Terraform itself.
"""
