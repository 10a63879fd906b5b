"""Block, action and callback ids shared by the view builders and the listeners."""

from __future__ import annotations

from enum import StrEnum


class Callback(StrEnum):
    REQUEST_MODAL = "ecs_deploy_request"
    REJECT_MODAL = "ecs_deploy_reject"
    EDIT_VALUES_MODAL = "ecs_deploy_edit_values"
    MISSING_VALUES_MODAL = "ecs_deploy_missing_values"
    CHANGE_MODAL = "ecs_deploy_change"  # change or upgrade a live environment (issue 13)
    DESTROY_MODAL = "ecs_deploy_destroy"  # typed confirmation of a destroy (issue 13)
    DRIFT_ACKNOWLEDGE_MODAL = "ecs_deploy_drift_acknowledge"  # why a drift is acknowledged (issue 14)


class Action(StrEnum):
    # analysis summary (issue 3)
    APPLY_RECOMMENDATIONS = "analysis_apply_recommendations"
    KEEP_VALUES = "analysis_keep_values"
    RUN_FULL_ANALYSIS = "analysis_run_full"
    OVERRIDE_PERMISSIONS = "analysis_override_permissions"
    CANCEL = "deployment_cancel"
    # state backend (issue 4)
    FIX_BACKEND = "backend_fix"
    PROVIDE_VALUES = "workspace_provide_values"
    # plan (issue 5)
    APPROVE = "plan_approve"
    REJECT = "plan_reject"
    EDIT_VALUES = "plan_edit_values"
    REPLAN = "plan_replan"
    OPEN_THREAD = "home_open_thread"
    # environments (issue 13); a button's value is the environment's key
    CHANGE_ENVIRONMENT = "environment_change"
    UPGRADE_ENVIRONMENT = "environment_upgrade"
    DESTROY_ENVIRONMENT = "environment_destroy"
    RETRY_CONFIG_COMMIT = "environment_config_retry"
    # drift (issue 14)
    PLAN_TO_RECONCILE = "drift_reconcile"
    ACKNOWLEDGE_DRIFT = "drift_acknowledge"


class BlockId(StrEnum):
    """Block ids of input blocks (and the plan's actions block); not slack_sdk's `Block`."""

    PROFILE = "profile"
    ACCOUNT_SITUATION = "account_situation"
    SIZE = "size"
    ACCOUNT_ID = "account_id"
    REGION = "region"
    APPLICATION = "application"
    ENVIRONMENT = "environment"
    TAGS = "additional_tags"
    VPC_CIDR = "vpc_cidr_block"
    STATE_BUCKET = "state_bucket"
    LOCK_TABLE = "lock_table"
    REASON = "reason"
    ACTIONS = "actions"


# Every input element uses the action id "value" inside its block, so a block id names a field.
INPUT_ACTION = "value"
