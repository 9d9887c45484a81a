"""The mitigation journal on its own: lines appended and committed, read back after a crash, looked up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from container_app.core.errors import MitigationError
from container_app.core.vocabulary import JournalPhase, JournalStep
from container_app.mitigation.journal import Journal


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_appended_lines_are_committed_with_the_enum_values(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.jsonl"
    journal = Journal.open(str(path))
    journal.append(JournalStep.RESOURCE_START, JournalPhase.DONE, resource="SCANS/1/DICOM", backupFolder="/b")
    journal.append(JournalStep.BACKUP, JournalPhase.DONE, resource="SCANS/1/DICOM", path="SCANS/1/DICOM/a.dcm",
                   backup="/b/a.dcm", sha256="00")
    journal.commit()
    written = lines(path)  # committed: on disk before close
    journal.close()
    assert [list(r) for r in written] == [["at", "step", "phase", "resource", "backupFolder"],
                                          ["at", "step", "phase", "resource", "path", "backup", "sha256"]]
    assert [(r["step"], r["phase"]) for r in written] == [("resource-start", "done"), ("backup", "done")]
    assert written[1]["sha256"] == "00"


def test_a_line_torn_by_a_crash_is_cut_off_so_later_crashes_never_read_as_damage(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal.open(str(path))
    journal.append(JournalStep.MOVE, JournalPhase.DONE, resource="r", path="r/a", target="r/b")
    journal.close()
    for torn in ('{"at": "2024-01-01", "step": "mo', '{"at": "2024-01-01", "path": "r/\u00e9'):
        with path.open("ab") as handle:  # a crash in the middle of a line, the second inside a character
            handle.write(torn.encode("utf-8")[:-1])
        reopened = Journal.open(str(path))  # the second time, after a rerun that crashed as well
        assert [r.path for r in reopened.records][:1] == ["r/a"]
        reopened.append(JournalStep.DELETE, JournalPhase.START, resource="r", path="r/c", target=None)
        reopened.close()
    text = path.read_text("utf-8").splitlines()
    assert [json.loads(line)["step"] for line in text] == ["move", "delete", "delete"]
    final = Journal.open(str(path))
    final.close()
    assert [r.step for r in final.records] == [JournalStep.MOVE, JournalStep.DELETE, JournalStep.DELETE]


def test_a_damaged_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"at": "x", "step": "move", "phase": "done", "resource": "r"}\nnot json\n'
                    '{"at": "x", "step": "move", "phase": "done", "resource": "r"}\n', encoding="utf-8")
    with pytest.raises(MitigationError, match="damaged at line 2"):
        Journal.open(str(path))


def test_done_looks_up_by_resource_and_fields(tmp_path: Path) -> None:
    journal = Journal.open(str(tmp_path / "journal.jsonl"))
    journal.append(JournalStep.BACKUP, JournalPhase.START, resource="r1", files=2, folder="/b")
    journal.append(JournalStep.BACKUP, JournalPhase.DONE, resource="r1", path="r1/a", backup="/b/a", sha256="1")
    journal.append(JournalStep.BACKUP, JournalPhase.DONE, resource="r1", path="r1/b", backup="/b/b", sha256="2")
    journal.append(JournalStep.BACKUP, JournalPhase.FAILED, resource="r2", path="r2/a", error="no")
    journal.append(JournalStep.CATALOG, JournalPhase.START, resource="r1", sha256="new")
    journal.close()
    reread = Journal.open(str(tmp_path / "journal.jsonl"))
    for journal_now in (journal, reread):  # the same answers from memory and from the file
        assert [r.path for r in journal_now.done(JournalStep.BACKUP, resource="r1")] == ["r1/a", "r1/b"]
        assert [r.path for r in journal_now.done(JournalStep.BACKUP, resource="r1", sha256="2")] == ["r1/b"]
        assert journal_now.done(JournalStep.BACKUP, resource="r2") == []
        assert len(journal_now.done(JournalStep.BACKUP)) == 2
        assert journal_now.done_paths(JournalStep.BACKUP, "r1") == {"r1/a", "r1/b"}
        assert journal_now.field_values(JournalStep.CATALOG, "r1", "sha256") == {"new"}
        record = journal_now.for_resource("r2")[0]
        assert (record.step, record.phase, record.get("error")) == (JournalStep.BACKUP, JournalPhase.FAILED, "no")
    reread.close()


def test_a_torn_line_longer_than_the_block_read_from_the_end_is_cut_off(tmp_path: Path) -> None:
    """The end of the last complete line is looked for backwards, 64 KB at a time."""
    path = tmp_path / "journal.jsonl"
    whole = json.dumps({"step": "backup", "phase": "done", "resource": "R", "path": "p" * 70_000}) + "\n"
    torn = whole[:-1] + "x" * 200_000  # no newline: 270 KB, more than four blocks
    path.write_text(whole + torn, encoding="utf-8")
    journal = Journal.open(str(path))
    journal.close()
    assert path.read_text(encoding="utf-8") == whole
    [record] = Journal.open(str(path)).done(JournalStep.BACKUP, resource="R")
    assert record.path == "p" * 70_000
