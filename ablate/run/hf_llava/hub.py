"""Push an exported folder to the Hugging Face Hub (`ablate export --repo-id`)."""

from __future__ import annotations

from pathlib import Path

from ablate.errors import AblateError


def check_can_push(repo_id: str, folder: Path) -> None:
    """Fail before exporting on a malformed repo id or when the Hub is switched off (HF_HUB_OFFLINE)."""
    from huggingface_hub import is_offline_mode
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise AblateError(f"--repo-id {repo_id!r} is not a Hub repo id: {error}") from None
    if is_offline_mode():
        raise AblateError(f"--repo-id {repo_id}: cannot push to the Hugging Face Hub in offline mode "
                          f"(HF_HUB_OFFLINE is set); export without --repo-id and upload the folder later "
                          f"with `hf upload {repo_id} {folder}`")


def push_folder(folder: Path, repo_id: str) -> str:
    """Create the model repo if needed and upload the folder as one commit; returns its URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HTTPError

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        commit = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model",
                                   commit_message="Upload ablate export (hf-llava)")
    except (OSError, HTTPError) as error:  # offline, no token, no network, refused by the Hub
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AblateError(f"--repo-id {repo_id}: the export is complete in {folder}, but pushing it to the "
                          f"Hugging Face Hub failed: {reason}. Upload it later with "
                          f"`hf upload {repo_id} {folder}`") from None
    return commit.commit_url
