"""One way to put a folder on the Hugging Face Hub, for every stage that publishes (prefs, train, publish, demo).

    from data_tools.hub import upload_folder
    url = upload_folder("my-team/tacos_image_dpo", folder, repo_type="dataset", token=token,
                        allow_patterns=["README.md", "charts/*"], message="Dataset Card (mirada prefs)")

Each stage used to build its own ``HfApi`` and call ``create_repo`` + ``upload_folder``; they differed
in whether they honoured ``HF_ENDPOINT``, created the repository first, and what a failure printed (a
traceback whose HTTP error can echo the ``Authorization`` header). Here the repository is created if
missing, ``HF_ENDPOINT`` is read at call time (tests point it at a local server), and a failure is one
redacted line naming the repository, the HTTP status with a hint, and how to retry by hand.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from data_tools.errors import one_line
from data_tools.secrets import redact, register_secret
from data_tools.stage_args import UserError

__all__ = ["HubUploadError", "upload_folder"]

TOKEN_ENV = "HF_TOKEN"
_HINTS: dict[int | None, str] = {
    401: f"{TOKEN_ENV} is not a valid token",
    403: f"{TOKEN_ENV} has no write access to that repository or organisation",
    404: "the organisation does not exist or the token cannot see it",
}


class HubUploadError(UserError):
    """A push that failed; the message is one line, with the token redacted."""


def upload_folder(
    repo_id: str,
    folder: str | Path,
    *,
    repo_type: str = "model",
    token: str | None,
    private: bool = False,
    message: str,
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] | None = None,
    space_sdk: str | None = None,
    create: bool = True,
    retry_hint: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` in one commit; return the repository's URL.

    ``retry_hint`` ends the error message (default: the ``hf upload`` command for the folder), so a
    user whose push failed after hours of work knows that nothing is lost and how to push again.
    """
    from huggingface_hub import HfApi

    if not token:
        raise HubUploadError(f"pushing to {repo_id} needs {TOKEN_ENV} in the environment")
    register_secret(token)
    api = HfApi(token=token, endpoint=os.environ.get("HF_ENDPOINT") or None)
    try:
        if create:
            extra = {"space_sdk": space_sdk} if space_sdk else {}
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **extra)
        api.upload_folder(
            repo_id=repo_id,
            repo_type=repo_type,
            folder_path=str(folder),
            allow_patterns=list(allow_patterns) if allow_patterns else None,
            ignore_patterns=list(ignore_patterns) if ignore_patterns else None,
            commit_message=message,
        )
    except (OSError, ValueError) as exc:  # huggingface_hub's HTTP errors are OSErrors
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = _HINTS.get(status, "check the network and the repository id")
        said = " ".join(str(getattr(exc, "server_message", None) or "").split())
        retry = retry_hint or (
            f"{folder} is unchanged: push it later with "
            f"`hf upload {repo_id} {folder}{' --repo-type ' + repo_type if repo_type != 'model' else ''}`"
        )
        raise HubUploadError(
            redact(
                f"push to {repo_id} failed{f' (HTTP {status})' if status else ''}: {one_line(exc)}"
                f"{f' (the Hub said: {said})' if said else ''}; {hint}. {retry}"
            )
        ) from None
    prefix = {"dataset": "datasets/", "space": "spaces/"}.get(repo_type, "")
    return f"{api.endpoint.rstrip('/')}/{prefix}{repo_id}"
