"""Account analyses asked for outside a deployment (the MCP server's `analyse_account`): the record
(core.analysis.record.AccountAnalysis: the request, its state and its report), kept in Redis for a day,
and the RQ job that runs it on a worker.

Storage model: `ecs-deploy:analysis:{id}` holds the JSON of an `AccountAnalysis` (TTL one day). The
MCP server stores it `queued` and enqueues the job in the same transaction; the worker's job
(workers/account_analysis.py) verifies the access, runs the read-only scan and the conflict analysis
(core.analysis) exactly as a deployment's analysis step does, and stores `done` with the report, or
`failed` with the reason. Nothing is posted to Slack and nothing in the account is changed.
"""

from __future__ import annotations

import redis

from core.analysis.record import AccountAnalysis
from core.settings import Settings
from storage.queue import queue
from storage.records import read_model
from storage.store import PREFIX

ANALYSIS_TTL_SECONDS = 24 * 3600
JOB_FUNCTION = "workers.account_analysis.run_account_analysis"


def analysis_key(analysis_id: str) -> str:
    return f"{PREFIX}analysis:{analysis_id}"


class AnalysisStore:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def find(self, analysis_id: str) -> AccountAnalysis | None:
        return read_model(self.redis, analysis_key(analysis_id), AccountAnalysis)

    def save(self, analysis: AccountAnalysis, pipe: redis.client.Pipeline | None = None) -> None:
        target = pipe if pipe is not None else self.redis
        target.set(analysis_key(analysis.id), analysis.model_dump_json(), ex=ANALYSIS_TTL_SECONDS)

    def submit(self, analysis: AccountAnalysis, settings: Settings, job_timeout: int) -> None:
        """Store the analysis and queue its job in one transaction: both or neither."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.multi()  # explicit, so RQ's enqueue(pipeline=...) joins this transaction
            self.save(analysis, pipe)
            queue(self.redis, settings).enqueue(
                JOB_FUNCTION,
                analysis.id,
                {},
                job_timeout=job_timeout,
                result_ttl=ANALYSIS_TTL_SECONDS,
                failure_ttl=ANALYSIS_TTL_SECONDS,
                description=f"{analysis.id}: analyse the AWS account (read-only)",
                meta={"analysis_id": analysis.id},
                pipeline=pipe,
            )
            pipe.execute()
