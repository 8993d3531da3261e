"""The workspace store: the only code in Mirada that talks SQL (DESIGN §1)."""

from data_tools.workspace.drafts import CallRecord, DraftRecord
from data_tools.workspace.generations import Generation
from data_tools.workspace.judge import VerdictRecord
from data_tools.workspace.reviews import ReviewItem, ReviewResponse
from data_tools.workspace.store import ImageRow, InputRow, RunRecord, Workspace, WorkspaceError

__all__ = [
    "CallRecord",
    "DraftRecord",
    "Generation",
    "ImageRow",
    "InputRow",
    "ReviewItem",
    "ReviewResponse",
    "RunRecord",
    "VerdictRecord",
    "Workspace",
    "WorkspaceError",
]
