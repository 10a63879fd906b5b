"""Reusable test harness: real Redis, real RQ workers, moto in server mode, a Slack Web API stand-in
and the bot's real HTTP endpoint, all on free ports of 127.0.0.1."""
