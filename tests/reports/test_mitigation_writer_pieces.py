"""The mitigation report's resources are copied from the writer's temporary file a piece at a time (issue 17):
a resource of 36,000 files is a line of ~70 MB, never read whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from container_app.reports import mitigation_writer
from container_app.reports.mitigation_writer import MitigationReportWriter


def test_each_resource_comes_back_in_pieces_without_its_newline(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mitigation_writer, "_PIECE", 5)
    writer = MitigationReportWriter(str(tmp_path))
    try:
        lines = ['{"path":"a\\udcff","n":123456}', "{}", '{"x":"' + "y" * 23 + '"}']
        for line in lines:
            writer._lines.write(line + "\n")
        writer._lines.seek(0)
        for line in lines:
            pieces = list(writer._pieces())
            assert "".join(pieces) == line
            assert all(len(p) <= 5 for p in pieces) and len(pieces) >= len(line) // 5
        with pytest.raises(OSError, match="ends early"):
            list(writer._pieces())
    finally:
        writer.close()
