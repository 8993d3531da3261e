"""``mirada project``: the Hub owner, dataset name and code URL set once per workspace."""

from __future__ import annotations

import pytest

from data_tools.project import main
from data_tools.workspace import Workspace
from data_tools.workspace.project import ProjectError


def test_set_show_clear_and_one_line_errors(workspace, capsys):
    root = str(workspace.root)
    assert (
        main(["set", "owner=equipo-andino", "code_url=https://github.com/equipo-andino/fotos", "-w", root])
        == 0
    )
    assert "owner: equipo-andino" in capsys.readouterr().out
    with Workspace.open(workspace.root, create=False) as again:  # stored in the workspace, not in memory
        assert again.project() == {
            "code_url": "https://github.com/equipo-andino/fotos",
            "owner": "equipo-andino",
        }
    assert main(["set", "code_url=", "-w", root]) == 0  # an empty value clears a setting
    assert main(["show", "-w", root]) == 0
    assert "code_url: (not set)" in capsys.readouterr().out
    for bad in (
        ["set", "owner=mi equipo"],
        ["set", "code_url=ftp://x"],
        ["set", "color=rojo"],
        ["set", "owner"],
    ):
        assert main([*bad, "-w", root]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err
    with pytest.raises(ProjectError, match="dataset_name"):
        workspace.set_project(dataset_name="../fuera")
