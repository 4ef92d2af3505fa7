"""The shared CLI error printer: messages and fixes are shown as written, never read as Rich markup."""

from rich.console import Console

import shelfwise.cli._common as common
from shelfwise.errors import BackendUnavailableError


def test_fail_prints_brackets_in_the_message_and_the_fix(monkeypatch):
    out = Console(record=True, width=300)
    monkeypatch.setattr(common, "err_console", out)
    common.fail(BackendUnavailableError("ray is not installed", fix="pip install 'shelfwise[ray]'"))
    assert "pip install 'shelfwise[ray]'" in out.export_text()
