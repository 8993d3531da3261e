"""The ``argilla_server`` fixture comes from the root conftest's ``pytest_plugins`` (see ``fixture.py``)."""
