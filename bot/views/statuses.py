"""How a deployment's status reads: its label (emoji and words), and the words alone; and how a
deployment's kind reads (pure).

The statuses and kinds themselves, and what they mean, are core/lifecycle.py's; their wording lives here.
"""

from __future__ import annotations

from typing import NamedTuple

from core.lifecycle import DeploymentKind, DeploymentStatus

S = DeploymentStatus

STATUS_LABELS: dict[DeploymentStatus, str] = {
    S.REQUESTED: ":hourglass_flowing_sand: Requested",
    S.VERIFYING: ":mag: Verifying AWS access",
    S.ANALYSING: ":mag: Analysing the account",
    S.AWAITING_DECISION: ":raising_hand: Waiting for a decision on the analysis",
    S.PREPARING_BACKEND: ":package: Preparing the state backend",
    S.AWAITING_BACKEND_FIX: ":raising_hand: Waiting for confirmation to fix the state bucket",
    S.PREPARING_WORKSPACE: ":file_folder: Preparing the workspace",
    S.AWAITING_INPUT: ":raising_hand: Waiting for values from the requester",
    S.PLANNING: ":memo: Planning",
    S.AWAITING_APPROVAL: ":raising_hand: Waiting for approval",
    S.APPROVED: ":white_check_mark: Approved — waiting for a worker to apply",
    S.APPLYING: ":gear: Applying",
    S.VERIFYING_DEPLOYMENT: ":stethoscope: Verifying the deployment",
    S.DEPLOYED: ":white_check_mark: Deployed",
    S.DESTROYED: ":wastebasket: Destroyed",
    S.FAILED: ":x: Failed",
    S.REJECTED: ":no_entry: Rejected",
    S.CANCELLED: ":no_entry_sign: Cancelled",
    S.INTERRUPTED: ":warning: Interrupted",
}


class KindWords(NamedTuple):
    verb: str  # a commit subject's first word: "Change"
    done: str  # an environment's last change: "changed"
    requested: str  # the root message's title


KIND_WORDS: dict[DeploymentKind, KindWords] = {
    DeploymentKind.CREATE: KindWords("Create", "created", "ECS deployment requested"),
    DeploymentKind.CHANGE: KindWords("Change", "changed", "Change of a live ECS environment requested"),
    DeploymentKind.UPGRADE: KindWords("Upgrade", "upgraded", "Upgrade of a live ECS environment requested"),
    DeploymentKind.DESTROY: KindWords("Destroy", "destroyed", "Destroy requested"),
}


def status_label(status: DeploymentStatus) -> str:
    """The status as people read it: ":gear: Applying"."""
    return STATUS_LABELS[status]


def status_words(status: DeploymentStatus) -> str:
    """The status label without its emoji, lower-cased: "deployed", "waiting for approval"."""
    return STATUS_LABELS[status].split(" ", 1)[-1].lower()
