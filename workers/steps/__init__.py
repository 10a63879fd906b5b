"""The pipeline's steps. Each takes the job's Runtime and deployment, does its work through the
engines, reports through the notifier, and enqueues what comes next."""
