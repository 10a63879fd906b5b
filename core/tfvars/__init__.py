"""Terraform variable files for a deployment, one concern per module.

- `literals`: Python values -> HCL literal text (`hcl_literal`, and `compact_literal` for chat).
- `reading`: HCL text -> Python values decoded as Terraform decodes them (`read_tfvars`).
- `edit`: setting attributes of a tfvars template in place, comments and layout kept (`apply_values`).
- `type_constraints`: `variable` blocks of a `variables.tf` and a structural check against their types.
- `poc_idp`: what the bot knows about poc-idp's inputs (the variables it fills, the values only the
  requester can give, the Fargate cpu/memory rules).
- `validate`: a generated tfvars checked against `variables.tf` and the size's limits.
- `diff`: the top-level values a generated file changed against its template.
- `templates`: the bundled Jinja2 templates (per-size fallback tfvars, the tfbackend).

All pure: text in, text or models out (the templates are read from the repository's `templates/`).
"""
