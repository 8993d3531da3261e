"""One base class for user-fixable errors: every stage's error type is one, and a stage boundary prints it as one line."""

from __future__ import annotations

import argparse

import pytest

from data_tools.config import ConfigError
from data_tools.errors import UserError, one_line
from data_tools.prefs.build import PrefsError
from data_tools.review.service import ReviewError
from data_tools.sources.base import SourceError
from data_tools.stage_args import UserError as StageUserError
from data_tools.stage_args import run_stage
from data_tools.workspace import WorkspaceError


@pytest.mark.parametrize(
    "cls", [ConfigError, PrefsError, ReviewError, SourceError, StageUserError, WorkspaceError]
)
def test_every_stage_error_is_a_user_error(cls):
    assert issubclass(cls, UserError)


def test_model_load_error_is_a_user_error():
    models = pytest.importorskip("vlm.models")
    assert issubclass(models.ModelLoadError, UserError)


def test_the_stage_boundary_prints_any_user_error_as_one_line(capsys):
    class BudgetTooLow(UserError):
        pass

    def body(args: argparse.Namespace) -> int:
        raise BudgetTooLow("budget 0.01 USD is below one request")

    code = run_stage(body, argparse.ArgumentParser(prog="mirada demo"), [])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mirada demo: error: budget 0.01 USD") and "Traceback" not in err


def test_one_line_keeps_the_first_line():
    assert one_line(ValueError("first\nsecond")) == "first"
    assert one_line(ValueError("")) == "ValueError"
