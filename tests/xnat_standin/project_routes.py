"""The stand-in's project experiment listing with `columns=` (what `rollup --xnat-project` asks for).

XNAT's `GET /data/projects/{P}/experiments` (xnat-web ProjSubExptList, 1.8.x) answers its default columns
(SubjAssessmentAbst.getDefaultFields: ID, project, date, xsiType, label, insert_date) unless `columns=` names
others, which are XMLPathShortcuts names (EXPERIMENT_DATA: `last_modified` is
xnat:experimentData/meta/last_modified, `insert_date` its insert). QueryOrganizerResource.formatHeaders adds
`URI` (/data/experiments/{ID}) and the root element's ID column (`xnat:subjectassessordata/id`, as in NRG's
listing fixtures). Dates are XFT's: the server's local time, no zone ("2019-03-05 16:46:37.103").

The stand-in's last modification of a session: the newest of the session folder's and its resources'
catalogs' modification times. XNAT saves the session whenever a resource is added to it
(DefaultCatalogService.insertResourceCatalog: SaveItemHelper.authorizedSave of the session), which sets
last_modified, so an upload that creates a resource (as the Container Service's output handler does) moves it.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from tests.xnat_standin.archive import Session
from tests.xnat_standin.catalogs import CATALOG_SUFFIX
from tests.xnat_standin.framing import Answer, Request, json_answer, result_set
from tests.xnat_standin.state import StandInState


def _xft_time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def last_modified(session: Session) -> str:
    newest = session.path.stat().st_mtime
    for resource in session.resources.values():
        folder: Path = resource.path
        if folder.is_dir():
            for catalog in folder.glob(f"*{CATALOG_SUFFIX}"):
                newest = max(newest, catalog.stat().st_mtime)
    return _xft_time(newest)


def experiment_listing(state: StandInState, request: Request, project: str) -> Answer:
    """The listing with the columns asked for (unknown names answer empty, as the stand-in knows only these)."""
    columns = [c.strip() for c in (request.param("columns") or "").split(",") if c.strip()]
    rows = []
    for session in state.archive.sessions(project):
        known = {**state.shapes.experiment_row(session), "last_modified": last_modified(session)}
        row = {c: known.get(c, "") for c in columns}
        row["xnat:subjectassessordata/id"] = session.id
        row["URI"] = f"/data/experiments/{session.id}"
        rows.append(row)
    return json_answer(200, result_set(rows, "Experiments"))
