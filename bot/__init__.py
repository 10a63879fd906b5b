"""The Slack side of ecs-deploy-bot: the Bolt app, its listeners, Block Kit views and the notifier."""
