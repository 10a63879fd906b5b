"""The pull request of an environment branch on GitHub, through PyGithub (GitHub's REST API).

Used when ECS_DEPLOY_GITHUB_TOKEN is set and the push remote is a GitHub repository (owner/name
read from a github.com URL, or given as ECS_DEPLOY_GITHUB_REPOSITORY for another host, e.g. GitHub
Enterprise behind ECS_DEPLOY_GITHUB_API_URL). One open pull request per branch: it is opened on the
first commit and its title and body are updated to name the latest deployment afterwards. Calls:
`GET /repos/{owner}/{name}`, `GET /repos/{owner}/{name}/pulls?state=open&head=owner:branch&base=…`,
`POST /repos/{owner}/{name}/pulls`, `PATCH /repos/{owner}/{name}/pulls/{number}`.

The token is given to PyGithub only (an Authorization header); errors are reduced to GitHub's status
and message, never the request.
"""

from __future__ import annotations

import re

from github import Auth, Github, GithubException
from pydantic import BaseModel

from core.settings import Settings

GITHUB_URL = re.compile(
    r"^(?:https[:]//(?:[^@/]+@)?github\.com/|ssh://git@github\.com/|git@github\.com[:])"
    r"(?P<owner>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+?)(?:\.git)?/?$"
)
TIMEOUT_SECONDS = 30
RETRIES = 2


class PullRequestError(Exception):
    """GitHub refused or could not be reached; the message holds no credentials."""


class PullRequest(BaseModel):
    number: int
    url: str  # html_url, for people
    created: bool


def github_repository(settings: Settings, push_url: str) -> str | None:
    """`owner/name` of the push remote when pull requests are wanted (a token is set), else None."""
    if settings.github_token is None or not settings.github_token.get_secret_value():
        return None
    if settings.github_repository:
        return settings.github_repository
    found = GITHUB_URL.match(push_url.strip())
    return f"{found['owner']}/{found['name']}" if found else None


def open_or_update(
    settings: Settings, repository: str, *, branch: str, base: str, title: str, body: str
) -> PullRequest:
    """The open pull request from `branch` to `base`, updated to `title`/`body`, or a new one."""
    assert settings.github_token is not None
    client = Github(
        base_url=settings.github_api_url.rstrip("/"),
        auth=Auth.Token(settings.github_token.get_secret_value()),
        timeout=TIMEOUT_SECONDS,
        retry=RETRIES,
    )
    owner = repository.split("/", 1)[0]
    try:
        repo = client.get_repo(repository)
        for pull in repo.get_pulls(state="open", head=f"{owner}:{branch}", base=base):
            pull.edit(title=title, body=body)
            return PullRequest(number=pull.number, url=pull.html_url, created=False)
        pull = repo.create_pull(base=base, head=branch, title=title, body=body)
        return PullRequest(number=pull.number, url=pull.html_url, created=True)
    except GithubException as exc:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        raise PullRequestError(f"GitHub answered {exc.status}: {message or 'no message'}") from None
    except OSError as exc:  # connection refused, DNS, TLS, timeout (requests' errors are OSErrors)
        raise PullRequestError(f"GitHub could not be reached ({type(exc).__name__})") from None
    finally:
        client.close()
