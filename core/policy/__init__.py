"""The operator's access policy: who may request with an AWS profile, who may approve its plans,
which role the bot assumes for it, and how many approvals each environment needs.

- `principals`: Slack users and user groups as the policy names them (`Principals`, `SlackIdentity`).
- `access`: the resolved policy and its queries (`AccessPolicy.can_request`, `can_approve`,
  `approval_rule`, `role_for`…), including the open development default.
- `file_schema`: the YAML file as the operator writes it, validated field by field.
- `resolve`: merging `defaults` into each profile and the checks that need the whole profile.
- `loading`: reading the file (`load_policy`, `parse_policy`, `policy_from_settings`) and turning
  every mistake into a `PolicyError` (`errors`) naming the file, the line and the key.

Everything here is pure: no I/O except reading the file in `loading.load_policy`.
"""
