"""The errors the plan package raises on purpose (one root, so callers can catch them all)."""

from __future__ import annotations


class PlanSummaryError(Exception):
    """Root of every error the plan summary raises on purpose."""


class PlanParseError(PlanSummaryError):
    """The input is not a usable `terraform show -json` plan; the message says why, for a person."""
