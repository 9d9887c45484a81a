"""The mitigation the stand-in performs, the way XNAT's ResourceMitigator does, and its report.

Mitigation renames entries in place (they stay `cat:dcmEntry` with `UID` and `instanceNumber`), backs files
up under the cache folder, keeps the newest file of a duplicate group and removes the rest.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.xnat_standin import catalogs
from tests.xnat_standin.survey_requests import Findings, SurveyRequest, error_text, non_empty


def mitigate(request: SurveyRequest, findings: Findings, cache_root: Path) -> tuple[dict[str, Any], bool]:
    """XNAT's mitigation of one surveyed resource: (ResourceMitigationReport JSON, had errors)."""
    resource = request.resource
    session = resource.session
    source = resource.path
    cache = cache_root / session.project / session.id / request.request_time / (resource.scan_id or resource.label)
    cache.mkdir(parents=True, exist_ok=True)
    log_lines = [f"Beginning mitigation from resource survey request {request.id} for resource {resource.id}"]

    backups: dict[Path, Path] = {}
    moves: dict[Path, Path] = {}
    for file, expected in findings.mismatched.items():
        backups[file] = cache / file.relative_to(source)
        moves[file] = source / expected
    retained: list[Path] = []
    for members in findings.duplicates.values():
        for file in members:
            backups[file] = cache / file.relative_to(source)
        # XNAT keeps the newest file (by creation time); ties go to the one already at its name, then name order.
        keep = max(members, key=lambda f: (f.stat().st_mtime_ns, f.name == members[f], f.name))
        moves[keep] = source / members[keep]
        if keep.name == members[keep]:
            retained.append(keep)

    backup_errors: dict[str, dict[str, str]] = {}
    move_errors: dict[str, dict[str, str]] = {}
    delete_errors: dict[str, str] = {}
    deletes: list[Path] = []
    for file, target in backups.items():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise FileExistsError(str(target))
            shutil.copy2(file, target)
            log_lines.append(f" * {file} backed up to {target}")
            if file not in moves:
                deletes.append(file)
        except OSError as exc:
            backup_errors[str(file)] = {"file": str(target), "message": error_text(exc)}

    removals: set[str] = set()
    for file in deletes:
        try:
            file.unlink()
            removals.add(file.relative_to(source).as_posix())
            log_lines.append(f" * deleted {file}")
        except OSError as exc:
            delete_errors[str(file)] = error_text(exc)

    renames: dict[str, str] = {}
    pending = [(f, t) for f, t in moves.items() if f != t]
    fail_from = len(pending) // 2 if request.fail_mitigation else len(pending)
    for index, (file, target) in enumerate(pending):
        try:
            if index >= fail_from:
                raise OSError(f"the stand-in was told to fail this mitigation (fault switch) at {file.name}")
            if target.exists():
                raise FileExistsError(str(target))
            shutil.copy2(file, target)
            file.unlink()
            renames[file.relative_to(source).as_posix()] = target.relative_to(source).as_posix()
            log_lines.append(f" * {file} -> {target}")
        except OSError as exc:
            move_errors[str(file)] = {"file": str(target), "message": error_text(exc)}

    catalog_write_error: str | None = None
    catalog = resource.catalog_path
    if request.fail_mitigation:
        catalog_write_error = (f"Unable to write catalog {resource.rest_uri}: IOException stand-in fault. To access "
                               "this data, you will need to perform a catalog refresh.")
    elif catalog is not None:
        try:
            catalogs.rename_and_remove(catalog, renames, frozenset(removals))
        except OSError as exc:
            catalog_write_error = f"Unable to write catalog {resource.rest_uri}: {error_text(exc)}"
    (cache / f"mitigation-{session.id}-{resource.scan_id}-{request.request_time}.log").write_text(
        "\n".join(log_lines) + "\n", encoding="utf-8")

    total_errors = len(backup_errors) + len(move_errors) + len(delete_errors)
    report = non_empty({
        "resourceSurveyRequestId": request.id,
        "cachePath": str(cache),
        "movedFiles": {str(f): str(t) for f, t in moves.items()},
        "removedFiles": {str(f): str(t) for f, t in backups.items()},
        "retainedFiles": [str(p) for p in retained],
        "backupErrors": backup_errors,
        "moveErrors": move_errors,
        "deleteErrors": delete_errors,
        "catalogWriteError": catalog_write_error,
        "resourceSaveError": None,
        "totalMovedFiles": len(moves),
        "totalRemovedFiles": len(backups),
        "totalFileErrors": total_errors,
    })
    return report, bool(total_errors or catalog_write_error)
