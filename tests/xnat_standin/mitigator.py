"""The mitigation the stand-in performs, the way XNAT's ResourceMitigator does, and its report.

As `ResourceMitigationHelper.call()` (oncai/xnat, services/archive/impl/hibernate, 1.8.7 to 1.8.10): every
mismatched file and every file of an actionable duplicate group is backed up to
`$CACHE/$PROJECT/$SESSION_ID/$TIMESTAMP/$SCAN_PK/<path in the resource>` (`getCachePath`: the request's
project, experiment ID, request time and `scanId`, the scan's database key); the newest file of a group is
renamed to the group's name, the others deleted. A kept file already at its name is "moved to itself": it
is neither backed up nor moved, but listed in `retainedFiles`. `removedFiles` maps every backed-up file,
renamed ones included, to its backup. Entries are renamed in place (they stay `cat:dcmEntry` with `UID` and
`instanceNumber`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.xnat_standin import catalogs
from tests.xnat_standin.survey_requests import Findings, SurveyRequest, as_xnat_answers, error_text


def cache_folder(request: SurveyRequest, cache_root: Path) -> Path:
    """`ResourceMitigationHelper.getCachePath`: <cache>/<project>/<experiment ID>/<request time>/<scan key>."""
    resource = request.resource
    session = resource.session
    scan_key = str(session.scan_pk(resource.scan_id)) if resource.scan_id else resource.label
    return cache_root / session.project / session.id / request.request_time / scan_key


def mitigate(request: SurveyRequest, findings: Findings, cache_root: Path) -> tuple[dict[str, Any], bool]:
    """XNAT's mitigation of one surveyed resource: (ResourceMitigationReport JSON, had errors)."""
    resource = request.resource
    session = resource.session
    source = resource.path
    cache = cache_folder(request, cache_root)
    cache.mkdir(parents=True, exist_ok=True)
    log_lines = [f"Beginning mitigation from resource survey request {request.id} for resource {resource.id}"]

    gathered: dict[Path, Path] = {}
    moves: dict[Path, Path] = {}
    for file, expected in findings.mismatched.items():
        gathered[file] = cache / file.relative_to(source)
        moves[file] = source / expected
    for members in findings.duplicates.values():
        for file in members:
            gathered[file] = cache / file.relative_to(source)
        # XNAT keeps the newest file (FILES_BY_DATE: creation time); the stand-in breaks ties by the one
        # already at its name, then by name, so that a test can tell which one is kept.
        keep = max(members, key=lambda f: (f.stat().st_mtime_ns, f.name == members[f], f.name))
        moves[keep] = source / members[keep]
    # "Remove any file that's being moved to itself: it doesn't need to be backed up or moved" (XNAT).
    retained = sorted(f for f, t in moves.items() if f == t)
    moves = {f: t for f, t in moves.items() if f != t}
    backups = {f: b for f, b in gathered.items() if f not in retained}

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
    pending = list(moves.items())
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
    # The builder takes `movedFiles` before failed moves are taken out of `moves` (XNAT collects a copy), so a
    # failed rename is in movedFiles and in moveErrors, as in XNAT.
    report = as_xnat_answers({
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
    }, absent_when_empty=frozenset({"retainedFiles"}))
    return report, bool(total_errors or catalog_write_error)
