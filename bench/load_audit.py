"""bench/load.py's proof and report: state runs paired from the audit trail (`state_acquired` /
`state_released`), whether runs on one state overlapped, how long the same-state group waited in line,
and how often Terraform stopped on a lock it had taken itself."""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from bench.load_people import SHARED_APP, Tracked
from core.models import Deployment, DeploymentStatus
from storage.audit import AuditEvent
from tests.harness.slack_api import SlackApiStandIn

WAITING_MARK = "Waiting in line"


@dataclass
class Interval:
    state: str
    deployment_id: str
    step: str
    acquired: datetime
    released: datetime | None

    def seconds(self) -> float:
        return (self.released - self.acquired).total_seconds() if self.released else float("nan")


def state_intervals(events: list[AuditEvent]) -> tuple[list[Interval], list[str]]:
    """Pair state_acquired/state_released per (deployment, state, step), in order."""
    open_: dict[tuple[str, str, str], list[Interval]] = defaultdict(list)
    intervals: list[Interval] = []
    problems: list[str] = []
    for event in sorted(events, key=lambda e: e.at):
        if event.event not in ("state_acquired", "state_released"):
            continue
        key = (event.deployment_id, str(event.detail.get("state")), str(event.detail.get("step")))
        if event.event == "state_acquired":
            interval = Interval(key[1], key[0], key[2], event.at, None)
            open_[key].append(interval)
            intervals.append(interval)
        elif open_[key]:
            open_[key].pop(0).released = event.at
        else:
            problems.append(f"state_released without state_acquired: {key}")
    problems += [
        f"never released: {i.deployment_id} {i.step} on {i.state}" for i in intervals if i.released is None
    ]
    return intervals, problems


def overlaps(intervals: list[Interval]) -> dict[str, list[tuple[Interval, Interval]]]:
    """Per state: consecutive runs where one was acquired before the previous was released."""
    by_state: dict[str, list[Interval]] = defaultdict(list)
    for interval in intervals:
        by_state[interval.state].append(interval)
    found: dict[str, list[tuple[Interval, Interval]]] = {}
    for state, runs in by_state.items():
        runs.sort(key=lambda i: i.acquired)
        for before, after in pairwise(runs):
            if before.released is None or after.acquired < before.released:
                found.setdefault(state, []).append((before, after))
    return found


def max_concurrent_states(intervals: list[Interval]) -> tuple[int, datetime | None]:
    points: list[tuple[datetime, int, str]] = []
    for interval in intervals:
        if interval.released is None:
            continue
        points.append((interval.acquired, 1, interval.state))
        points.append((interval.released, -1, interval.state))
    held: Counter[str] = Counter()
    best, when = 0, None
    for at, delta, state in sorted(points, key=lambda p: (p[0], p[1])):  # releases before acquires at a tie
        held[state] += delta
        if held[state] <= 0:
            del held[state]
        if len(held) > best:
            best, when = len(held), at
    return best, when


def waited_in_line(api: SlackApiStandIn, deployment: Deployment, intervals: list[Interval]) -> float:
    """Seconds between each 'Waiting in line' post in the thread and the run's next state_acquired."""
    if not deployment.thread_ts:
        return 0.0
    posts = sorted(
        call.at
        for call in api.calls_to("chat.postMessage")
        if call.params.get("thread_ts") == deployment.thread_ts
        and WAITING_MARK in (call.params.get("text", "") + json.dumps(call.params.get("blocks") or []))
    )
    acquired = sorted(i.acquired.timestamp() for i in intervals if i.deployment_id == deployment.id)
    total, last_acquire = 0.0, float("-inf")
    for post in posts:
        later = [a for a in acquired if a >= post - 0.25]  # the post is made before the wait
        if not later or later[0] == last_acquire:
            continue  # another post for the same wait (the holder changed)
        last_acquire = later[0]
        total += max(0.0, later[0] - post)
    return total


# -- report --------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def spread(values: list[float]) -> str:
    if not values:
        return "n/a (none deployed)"
    return (
        f"min {min(values):6.1f}  p50 {percentile(values, 50):6.1f}  p90 {percentile(values, 90):6.1f}"
        f"  max {max(values):6.1f}  (n={len(values)})"
    )


def clock(at: datetime | None, origin: float) -> str:
    return "open" if at is None else f"+{at.timestamp() - origin:.2f}s"


def report(
    tracked: list[Tracked],
    intervals: list[Interval],
    pairing_problems: list[str],
    api: SlackApiStandIn,
    started: float,
    ended: float,
    terraform: str,
    args: argparse.Namespace,
) -> bool:
    print(f"Terraform: {terraform}")
    print(
        f"Load: {args.distinct} deployments on distinct states + {args.same} simultaneous requests for one environment (one deployment),"
        f" {args.workers} workers, submitted together through the HTTP endpoint"
    )
    print(f"Total wall time (first submission → last final status): {ended - started:.1f}s")
    deployed = {t.deployment_id for t in tracked if t.final and t.final.status is DeploymentStatus.DEPLOYED}
    for group in ("distinct", "same"):
        times = [
            t.finished_at - t.submitted_at
            for t in tracked
            if t.group == group and t.deployment_id in deployed and t.finished_at
        ]
        print(f"Per deployment, submit → deployed ({group:8}) [s]: {spread(times)}")

    kinds = Counter(t.final.status.value if t.final else "unfinished" for t in tracked)
    print("Final statuses: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))
    no_change = sum(1 for t in tracked if t.final and "no changes" in t.final.status_detail)
    moves: Counter[str] = Counter()
    for t in tracked:
        moves.update(t.actions)
    print(
        "People's moves: "
        + ", ".join(f"{name} {count}" for name, count in sorted(moves.items()))
        + f"; deployed with a no-change plan: {no_change}"
    )

    shared = [t for t in tracked if t.group == "same" and t.deployment_id]
    if shared:
        print(
            f"Same-state group ({SHARED_APP}/dev), waiting in line and state runs (times from the first submission):"
        )
        total_wait = 0.0
        for t in shared:
            current = t.final
            wait = waited_in_line(api, current, intervals) if current else 0.0
            total_wait += wait
            runs = sorted(
                (i for i in intervals if i.deployment_id == t.deployment_id), key=lambda i: i.acquired
            )
            run_text = ", ".join(
                f"{i.step} {clock(i.acquired, started)}→{clock(i.released, started)}" for i in runs
            )
            status = current.status.value if current else "unfinished"
            print(f"  {t.deployment_id}  waited {wait:5.1f}s  re-plans {t.replans}  {status:10}  {run_text}")
        print(f"  total time the same-state group waited in line: {total_wait:.1f}s")

    best, when = max_concurrent_states(intervals)
    print(f"Max distinct Terraform states held at once: {best} (at {clock(when, started).strip()})")

    found = overlaps(intervals)
    by_state: dict[str, list[Interval]] = defaultdict(list)
    for interval in intervals:
        by_state[interval.state].append(interval)
    ok = not found and not pairing_problems and bool(intervals)
    print(
        f"Same-state runs never overlapped: {'YES' if ok else 'NO'}"
        f" ({len(intervals)} state runs on {len(by_state)} states, from the audit trail)"
    )
    shared_states = [s for s, runs in by_state.items() if len({i.deployment_id for i in runs}) > 1]
    for state in sorted(shared_states) or sorted(by_state)[:1]:
        runs = sorted(by_state[state], key=lambda i: i.acquired)
        print(f"  {state}: {len(runs)} runs, each acquired after the previous release:")
        for before, after in zip([None, *runs], runs, strict=False):
            gap = (
                ""
                if before is None or before.released is None
                else f"  gap {(after.acquired - before.released).total_seconds():+.3f}s"
            )
            print(
                f"    {after.deployment_id} {after.step:5} {clock(after.acquired, started)} → "
                f"{clock(after.released, started)}{gap}"
            )
    others = len(by_state) - len(shared_states)
    if others:
        print(
            f"  other {others} states: one deployment each, {sum(len(r) for s, r in by_state.items() if s not in shared_states)} runs, no overlap"
        )
    for state, pairs in found.items():
        for before, after in pairs:
            print(
                f"  OVERLAP on {state}: {before.deployment_id} {before.step} held until {clock(before.released, started)}"
                f" but {after.deployment_id} {after.step} acquired at {clock(after.acquired, started)}"
            )
    for problem in pairing_problems:
        print(f"  audit problem: {problem}")
    if not intervals:
        print(
            "  no state_acquired/state_released events were recorded: nothing proves the runs were serialised"
        )

    unfinished = [t for t in tracked if t.final is None or t.final.status is not DeploymentStatus.DEPLOYED]
    for t in unfinished:
        state = t.final.status.value if t.final else "not final"
        detail = t.final.status_detail if t.final else ""
        print(
            f"NOT DEPLOYED: {t.application} {t.deployment_id or t.view_id}: {state} {detail} {'; '.join(t.errors[-2:])}"
        )
    return ok and not unfinished


def report_own_locks(events: list[AuditEvent]) -> None:
    """How often Terraform was blocked by its own lock (released by the bot, command run again), and
    any other Terraform lock the bot released."""
    released = [e for e in events if e.event == "terraform_lock_released"]
    own = [e for e in released if e.detail.get("retried") is True]
    print(
        f"Terraform stopped on a lock it had taken itself (released by id, retried once): {len(own)} time(s)"
        + (
            " — " + ", ".join(f"{e.deployment_id} {e.detail.get('lock_operation')}" for e in own)
            if own
            else ""
        )
    )
    others = [e for e in released if e not in own]
    if others:
        print(f"Terraform locks left by dead runs and released: {len(others)}")
