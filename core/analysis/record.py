"""An account analysis asked for outside a deployment (the MCP server's `analyse_account`): the
request, its state and what the analysis found. storage.account_analysis keeps it in Redis; the worker's
job (workers/account_analysis.py) fills it in."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from core.models import DeploymentRequest, utcnow


def new_analysis_id() -> str:
    return "a-" + secrets.token_hex(4)


class AnalysisState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """The job is over: the record will not change again."""
        return self in (AnalysisState.DONE, AnalysisState.FAILED)


class AccountAnalysis(BaseModel):
    id: str = Field(default_factory=new_analysis_id)
    request: DeploymentRequest
    requester_id: str
    requested_via: str | None = None
    state: AnalysisState = AnalysisState.QUEUED
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    verdict: str | None = None
    blocking: int = 0
    recommended_changes: dict[str, str] = Field(default_factory=dict)
    report_text: str = ""
    failure: str | None = None
    what_next: str | None = None
