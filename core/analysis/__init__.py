"""Account analysis: what a scan of the AWS account found, the conflicts it has with a deployment
request, what to change, and the verdict.

- `scan`: the scan's sections (one API listing each) and the models `workers.aws.scan` fills
  (`AccountScan`).
- `report`: findings (`Conflict`), the `Verdict` and the `AnalysisReport` that `bot.views.analysis`
  renders.
- `rules`: one function per kind of conflict (CIDR overlap, names poc-idp would generate, quotas,
  availability zones, a "brand-new" account that is not, denied permissions).
- `recommendations`: free values to propose (the next free /16, a free application or environment
  name) and applying them to a request.
- `analyse`: `analyse_account`, which runs every rule and builds the report.
- `record`: `AccountAnalysis`, an analysis asked for outside a deployment (the MCP server's), and its
  state.

Pure rules over pydantic models: nothing here reads AWS or Slack.
"""
