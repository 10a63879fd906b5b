"""Reading `terraform show -json` output and summarising it for review (see core.plan.rules).

Modules: `model` (the PlanSummary a review shows), `errors`, `document` (the parts of the plan JSON the
summary reads, as typed records), `reading` (bytes or text or a parsed object → those records, with
an explanation for every way the input can be unusable), `values` (masking attribute and output
values), `rules` (Terraform's counting, grouping and ordering: the summary itself).
"""
