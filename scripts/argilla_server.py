"""Start a local Argilla review server in the foreground, to try the review UI by hand (``make argilla``).

The real ``argilla-server`` 2.8.0, offline: SQLite, an in-memory search engine, fakeredis
(``tests/argilla_server/``). The first run builds its virtualenv (~1.5 min); data persist in the data dir
between runs, so a person can stop (Ctrl+C) and come back to the same datasets and answers.

    python3 scripts/argilla_server.py                    # http://127.0.0.1:6900
    python3 scripts/argilla_server.py --port 6901 --reset
    MIRADA_ARGILLA_DATA=/tmp/rg python3 scripts/argilla_server.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.argilla_server.serverctl import (  # noqa: E402  (needs the repo root on sys.path)
    DEFAULT_ANNOTATORS,
    DEFAULT_OWNER,
    DEFAULT_WORKSPACE,
    ArgillaServer,
    ArgillaServerError,
)
from tests.argilla_server.venv_builder import ServerVenvError, ensure_server_venv  # noqa: E402

DEFAULT_DATA_DIR = REPO_ROOT / ".cache" / "argilla-data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="use 0.0.0.0 to reach it from other machines")
    parser.add_argument("--port", type=int, default=6900)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("MIRADA_ARGILLA_DATA") or DEFAULT_DATA_DIR),
        help="SQLite DB and logs (default: $MIRADA_ARGILLA_DATA or .cache/argilla-data)",
    )
    parser.add_argument("--reset", action="store_true", help="delete the data dir first (all datasets)")
    args = parser.parse_args(argv)

    try:
        python = ensure_server_venv()
    except ServerVenvError as error:
        print(error, file=sys.stderr)
        return 1
    if args.reset:
        shutil.rmtree(args.data_dir, ignore_errors=True)

    server = ArgillaServer(
        args.data_dir, host=args.host, port=args.port, python=python, tie_to_parent=True, log_to_console=True
    )
    try:
        server.start()
    except ArgillaServerError as error:
        print(f"{error}\n(see the server output above)", file=sys.stderr)
        return 1

    shown_host = "127.0.0.1" if args.host == "0.0.0.0" else args.host
    lines = [
        "",
        f"Argilla is running at http://{shown_host}:{args.port}  (data: {server.data_dir})",
        f"workspace: {DEFAULT_WORKSPACE}",
        f"owner      {DEFAULT_OWNER.username:<8} password {DEFAULT_OWNER.password:<16} API key {DEFAULT_OWNER.api_key}",
    ]
    lines += [
        f"annotator  {c.username:<8} password {c.password:<16} API key {c.api_key}"
        for c in DEFAULT_ANNOTATORS
    ]
    lines += ["Press Ctrl+C to stop.", ""]
    print("\n".join(lines), flush=True)
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
