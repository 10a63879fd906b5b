"""The MCP views copy the record fields they show by naming them (`model_dump(include=…)`, which
ignores a name the record does not have): every name copied must exist on both the record and the
view, so a renamed field fails here instead of vanishing from what assistants read."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from bot.mcp import views
from core.analysis.record import AccountAnalysis
from core.environments import EnvironmentChange
from core.models import Deployment, PlanRecord


@pytest.mark.parametrize(
    ("names", "record", "view"),
    [
        (views.DEPLOYMENT_FIELDS, Deployment, views.DeploymentView),
        (views.ANALYSIS_FIELDS, AccountAnalysis, views.AnalysisView),
        (views.PLAN_FIELDS, PlanRecord, views.PlanView),
        (views.CHANGE_FIELDS, EnvironmentChange, views.ChangeView),
    ],
    ids=["deployment", "analysis", "plan", "change"],
)
def test_every_copied_field_exists_on_the_record_and_the_view(
    names: set[str], record: type[BaseModel], view: type[BaseModel]
) -> None:
    assert names, "nothing copied"
    assert names <= set(record.model_fields), names - set(record.model_fields)
    assert names <= set(view.model_fields), names - set(view.model_fields)
