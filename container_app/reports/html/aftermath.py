"""The mitigation page's figures: what was done (or in a dry run, would be), what a mitigation left and
what to do with it.

An overall status alone ("DIVERGENT after the mitigation") reads like a failure when what remains is two
bad files no mitigation can fix; each item here says what is left, why the tool left it, and the next
step. The note on reports uploaded to XNAT is here too: they keep the old file names, and old names can
carry a patient's name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from container_app.reports.html.view import count


@dataclass(frozen=True)
class Remainder:
    key: str  # a stable data-left attribute for tests and scripts
    count: int
    what: str
    advice: str


def what_is_left(survey_totals: Mapping[str, int], report_totals: Mapping[str, Any]) -> list[Remainder]:
    """The things a (real, not dry) mitigation leaves, from the survey's counts and the mitigation's totals."""
    items = [
        Remainder("badFiles", survey_totals.get("totalBadFiles", 0),
                  "bad files (not DICOM, damaged, unreadable or not regular files)",
                  "No mitigation renames or removes a bad file: the resource stays DIVERGENT while it holds one. "
                  "The resource sections below give each file's reason. Replace a damaged file from its source, "
                  "or remove a file that does not belong through XNAT, then survey again."),
        Remainder("nonActionableDuplicates", survey_totals.get("totalNonActionableDuplicates", 0),
                  "groups of copies that cannot be told apart by name",
                  "XNAT's naming gives every copy the same expected name but they differ: compare them (the "
                  "resource sections name the attributes) and remove the unwanted copy by hand."),
        Remainder("conflicts", count(report_totals.get("conflicts")), "files left in conflict",
                  "Their expected name is taken, shared or unsafe, or the copies cannot be ranked: nothing of "
                  "them moved. Each resource section says why; resolve them by hand and survey again."),
        Remainder("stale", count(report_totals.get("stale")), "resources that changed since the survey",
                  "They were left alone: survey them again, then mitigate with the new report."),
        Remainder("failed", count(report_totals.get("failed")), "resources that failed or stopped part-way",
                  "Their errors are in the resource sections. Run the same mitigate command again: it finishes "
                  "the run from its journal, and restore can undo what was done."),
        Remainder("fileErrors", count(report_totals.get("fileErrors")), "files that could not be changed",
                  "See each file's error below; run mitigate again once the cause is fixed."),
    ]
    return [item for item in items if item.count > 0]


def uploaded_names_note(identifying_names: int, executor: str) -> str | None:
    """Where the reports themselves disclose: their file names are the old ones, kept on purpose."""
    if identifying_names <= 0:
        return None
    where = ("Inside XNAT these reports are uploaded to the session's (or scan's) RESOURCE_SURVEY resource, "
             "which every member of the project can read, and stay there after the files are renamed. "
             if executor == "xnat" else
             "If these reports are uploaded to XNAT (as the container does, to the RESOURCE_SURVEY resource that "
             "every member of the project can read), they stay there after the files are renamed. ")
    return (f"These reports name the files as they were found, and {identifying_names} of those names carry "
            "identifying values such as a patient's name. " + where +
            "Once the result is verified: remove the RESOURCE_SURVEY resources (and, for the file-operations way, "
            "RESOURCE_SURVEY_BACKUP) of the sessions concerned, and keep the mitigation report and BACKUP "
            "only where patients' data may be kept. After that, restore can no longer run from XNAT: it needs the "
            "mitigation report and the backups (a copy of the report stays in BACKUP's state folder).")


def mitigation_stats(resources: int, m_totals: Counter[str], report_totals: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"key": "resources", "label": "resources mitigated", "value": resources, "alert": False},
        {"key": "movedFiles", "label": "files moved (renamed)", "value": m_totals["totalMovedFiles"], "alert": False},
        # XNAT's removedFiles counts every backed-up file, the moved ones included: said so, or 15 "removed"
        # beside a dry run's 4 would look wrong.
        {"key": "removedFiles", "label": "old names removed, each backed up (moved files included)",
         "value": m_totals["totalRemovedFiles"], "alert": False},
        {"key": "fileErrors", "label": "file errors", "value": m_totals["totalFileErrors"],
         "alert": m_totals["totalFileErrors"] > 0},
        *left_alone(report_totals),
    ]


def dry_run_stats(m_totals: Counter[str], report_totals: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A dry run's figures say what the run would do: nothing was moved, so "moved 0" would tell nothing."""
    return [
        {"key": "wouldMove", "label": "files that would move (renamed)", "value": m_totals["wouldMove"],
         "alert": False},
        {"key": "wouldRemove", "label": "files that would be removed (backed up first)",
         "value": m_totals["wouldRemove"], "alert": False},
        {"key": "wouldRetain", "label": "copies that would be kept", "value": m_totals["wouldRetain"],
         "alert": False},
        *left_alone(report_totals),
    ]


def left_alone(report_totals: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "label": label, "value": count(report_totals[key]), "alert": count(report_totals[key]) > 0}
            for key, label in (("conflicts", "conflicts (left alone)"), ("stale", "stale resources"),
                               ("failed", "failed resources")) if key in report_totals]
