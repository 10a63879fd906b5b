"""Pure renderers: models in, `slack_sdk.models` blocks and views out. No I/O here."""
