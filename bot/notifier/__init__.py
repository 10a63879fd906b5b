"""The only code that writes to Slack.

Every deployment has one root message in the channel where it was requested; everything else goes
into that message's thread. A Slack fault while reporting never fails the work being reported, and
never makes it wait.

Every Slack write of a deployment — the root message and its refreshes, thread messages, updates in
place, decisions (buttons replaced), file uploads — is queued in the deployment's **outbox**
(bot/outbox.py) and delivered from there, in the order it was queued:
- `Notifier(..., background=True)` (the web process and the work horses) queues and returns at once;
  a deliverer thread of the process sends. Nothing that holds a Terraform state waits on Slack.
- `Notifier(...)` (the workers' maintenance, tests) queues, then delivers that deployment's outbox
  in the caller's thread (best effort: entries not yet due, or another deliverer at work, are left to
  the deliverers).
- A deliverer's rounds take another process's entries only once they are overdue by
  TAKEOVER_SECONDS: the process that queued them is sending them then (a process that died leaves
  them to the others, a second later).
- The notes of a click, a form or a command (a decision, who cancelled or re-planned, the values
  given) are queued in the same Redis transaction as the job it starts or the cancel flag it sets
  (`queue_in`), so the worker's messages can never overtake them.

Slack faults, per entry (no retries inside the Slack client, see bot/slack.py):
- a rate limit (429) is waited out for as long as `Retry-After` says, by trying the entry again then
  (without blocking anybody; it does not count as a failed attempt, OUTBOX_MAX_RATE_LIMITS at most);
- a server fault, a timeout or a broken connection is retried with backoff (OUTBOX_BACKOFF_FIRST,
  doubling up to OUTBOX_BACKOFF_MAX), at most OUTBOX_MAX_ATTEMPTS times in all;
- a post or upload whose outcome is unknown (a 5xx or a dropped connection after Slack may have
  acted, or a process that died mid-call: the entry is marked *in flight* before the call) is first
  looked up in the thread (`conversations.replies`) or the channel (`conversations.history`) by the
  message metadata the bot attaches (`event_type` ecs_deploy_message, the deployment and entry ids)
  or the uploaded file's id, and only posted again if it is not there. If Slack will not let the bot
  read the conversation (a scope is missing, the bot is not a member), it is posted again and a
  warning logged;
- a permanent refusal (`channel_not_found`, `invalid_blocks`, …) is logged and dropped;
- a thread message that is gone (deleted) is posted anew instead of updated.

A post returns the placeholder ts `outbox:{entry id}` until it is delivered; `update()` and
`decide()` accept it and resolve it to the real ts at delivery. Message keys:
- `ecs-deploy:message:{deployment}:{ts}`    blocks of a remembered message (`decide` swaps its buttons)
- `ecs-deploy:outbox:ts:{entry}`            the real ts of a delivered post (the placeholder's target)
- `ecs-deploy:outbox:moved:{deployment}:{ts}` the message that replaced a deleted one
- `ecs-deploy:outbox:root:{deployment}`     when the root message was first tried (then: look it up)

Modules: thread (Notifier, the API callers use), delivery (the outbox's delivery loop, its bounds),
sending (one entry to Slack, the look-up before a re-post), slack_calls (one Slack call, looking a
post up), entries (keys, message metadata, the state of one delivery).
"""

from bot.notifier.thread import DRAIN_SECONDS, Notifier
from bot.outbox import PLACEHOLDER_PREFIX

__all__ = ["DRAIN_SECONDS", "PLACEHOLDER_PREFIX", "Notifier"]
