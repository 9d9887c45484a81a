"""The stand-in's `/data/...` routes: projects, subjects, experiments, scans, resources, files, catalog refresh.

`serve_data` gets the path segments after `data` (REST and /data/archive already folded in by framing.py),
from an authenticated request. The JSON of each object is built in shapes.py; the session and token
routes under /data are auth.py's.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import os

from tests.xnat_standin import auth, catalogs, project_routes
from tests.xnat_standin.archive import (
    SCAN_XSI_TYPE,
    SESSION_XSI_TYPE,
    Resource,
    Session,
    StandInError,
    now_text,
    resolve_inside,
)
from tests.xnat_standin.framing import (
    Answer,
    Request,
    html_answer,
    json_answer,
    normalise,
    result_set,
    text_answer,
)
from tests.xnat_standin.state import StandInState


def serve_data(state: StandInState, request: Request, s: list[str]) -> Answer:
    method = request.method
    archive = state.archive
    if s == ["JSESSION"]:
        return auth.jsession(state.accounts, request)
    if s == ["auth"]:
        return auth.logged_in(request)
    if s == ["version"]:
        return text_answer(200, state.version)
    if s == ["services", "tokens", "issue"]:
        return auth.issue_token(state.accounts, request)
    if s[:2] == ["search", "elements"] and method == "GET":
        return _search_elements(s[2:])
    if s == ["services", "refresh", "catalog"] and method == "POST":
        return _refresh(state, request)
    with archive.lock:
        if s == ["projects"] and method == "GET":
            rows = [{"ID": p, "secondary_ID": p, "name": p, "description": "", "pi_firstname": "",
                     "pi_lastname": "", "URI": f"/data/projects/{p}"}
                    for p in archive.projects() if state.accounts.role(request.user, p) is not None]
            return json_answer(200, result_set(rows, "Projects"))
        if s == ["experiments"] and method == "GET":
            project = request.param("project")
            sessions = [x for x in archive.sessions(project) if state.accounts.role(request.user, x.project)]
            return json_answer(200, result_set([state.shapes.experiment_row(x) for x in sessions], "Experiments"))
        if s[:1] == ["projects"] and len(s) >= 2:
            return _project(state, request, s[1], s[2:])
        if s[:1] == ["experiments"] and len(s) >= 2:
            session = archive.find_session(s[1])
            state.accounts.require(request, session.project, "read")
            return _experiment(state, request, session, s[2:])
        if s[:1] == ["subjects"] and len(s) >= 2:
            sessions = [x for x in archive.sessions() if x.subject_id == s[1]]
            if not sessions:
                raise StandInError(404, f"the stand-in has no subject {s[1]!r}")
            return _subject(state, request, sessions[0], s[2:])
    raise StandInError(404, f"the stand-in does not serve {method} {request.path}")


def _project(state: StandInState, request: Request, project: str, rest: list[str]) -> Answer:
    archive = state.archive
    if project not in archive.projects():
        raise StandInError(404, f"the stand-in has no project {project!r}")
    state.accounts.require(request, project, "read")
    if not rest:
        return json_answer(200, {"items": [{"children": [], "meta": {"xsi:type": "xnat:projectData",
                                                                     "isHistory": False},
                                            "data_fields": {"ID": project, "secondary_ID": project, "name": project}}]})
    if rest == ["subjects"]:
        rows = [{"ID": x.subject_id, "label": x.subject_label, "project": project, "insert_date": x.insert_date(),
                 "URI": f"/data/subjects/{x.subject_id}"} for x in archive.sessions(project)]
        return json_answer(200, result_set(rows, "Subjects"))
    if rest == ["experiments"] and request.param("columns"):
        return project_routes.experiment_listing(state, request, project)
    if rest == ["experiments"]:
        return json_answer(200, result_set([state.shapes.experiment_row(x) for x in archive.sessions(project)],
                                           "Experiments"))
    if rest[0] == "experiments" and len(rest) >= 2:
        return _experiment(state, request, archive.find_session(rest[1], project), rest[2:])
    if rest[0] == "subjects" and len(rest) >= 2:
        matches = [x for x in archive.sessions(project) if rest[1] in (x.subject_id, x.subject_label)]
        if not matches:
            raise StandInError(404, f"the stand-in has no subject {rest[1]!r}")
        return _subject(state, request, matches[0], rest[2:])
    raise StandInError(404, f"the stand-in does not serve {request.method} {request.path}")


def _subject(state: StandInState, request: Request, session: Session, rest: list[str]) -> Answer:
    state.accounts.require(request, session.project, "read")
    if not rest:
        return json_answer(200, {"items": [{"children": [], "meta": {"xsi:type": "xnat:subjectData",
                                                                     "isHistory": False},
                                            "data_fields": {"ID": session.subject_id, "label": session.subject_label,
                                                            "project": session.project}}]})
    if rest == ["experiments"]:
        return json_answer(200, result_set([state.shapes.experiment_row(session)], "Experiments"))
    if rest[0] == "experiments" and len(rest) >= 2:
        found = state.archive.find_session(rest[1], session.project)
        if found.subject_id != session.subject_id:
            raise StandInError(404, f"the stand-in has no experiment {rest[1]!r} for that subject")
        return _experiment(state, request, found, rest[2:])
    raise StandInError(404, f"the stand-in does not serve {request.method} {request.path}")


def _experiment(state: StandInState, request: Request, session: Session, rest: list[str]) -> Answer:
    archive = state.archive
    shapes = state.shapes
    method = request.method
    state.accounts.require(request, session.project, "read")
    if not rest:
        if method == "GET":
            return json_answer(200, {"items": [shapes.experiment_item(session)]})
        raise StandInError(405, "the stand-in does not change experiments")
    if rest == ["scans"] and method == "GET":
        rows = []
        for each in session.scan_ids():
            item = shapes.scan_item(session, each)["data_fields"]
            rows.append({"ID": each, "type": item["type"], "series_description": item["series_description"],
                         "quality": "usable", "xsiType": SCAN_XSI_TYPE, "note": "",
                         "xnat_imagescandata_id": str(item["xnat_imagescandata_id"]),
                         "URI": f"/data/experiments/{session.id}/scans/{each}"})
        return json_answer(200, result_set(rows, "Scans"))
    scan_id: str | None = None
    if rest[0] == "scans" and len(rest) >= 2:
        scan_id = rest[1]
        if scan_id not in session.scan_ids():
            raise StandInError(404, f"the stand-in has no scan {scan_id!r}")
        rest = rest[2:]
        if not rest and method == "GET":
            return json_answer(200, {"items": [shapes.scan_item(session, scan_id)]})
    if rest == ["resources"] and method == "GET":
        rows = [shapes.resource_row(r) for r in archive.resources_of(session, scan_id)]
        return json_answer(200, result_set(rows, "Resources"))
    if rest[:1] == ["resources"] and len(rest) >= 2:
        return _resource(state, request, session, scan_id, rest[1], rest[2:])
    raise StandInError(404, f"the stand-in does not serve {method} {request.path}")


def _resource(state: StandInState, request: Request, session: Session, scan_id: str | None, ref: str,
              rest: list[str]) -> Answer:
    archive = state.archive
    method = request.method
    if not rest:
        if method in ("PUT", "POST"):
            state.accounts.require(request, session.project, "edit")
            if ref.isdigit():
                raise StandInError(400, "the stand-in creates resources by label, not by ID")
            _require_justification(state, request)  # CatalogResource.handlePut -> insertCatalogWrap
            archive.create_resource(session, scan_id, ref, fmt=request.param("format"),
                                    content=request.param("content"))
            return text_answer(200, "")
        resource = archive.find_resource(session, scan_id, ref)
        if method == "DELETE":
            state.accounts.require(request, session.project, "delete")
            archive.delete_resource(resource)
            return text_answer(200, "")
        return json_answer(200, {"items": [state.shapes.resource_item(resource)]})
    if rest[0] != "files":
        raise StandInError(404, f"the stand-in does not serve {method} {request.path}")
    name = "/".join(rest[1:])
    if not name:
        if method == "GET":
            resource = archive.find_resource(session, scan_id, ref)
            return json_answer(200, result_set(state.shapes.file_rows(resource), "Files"))
        raise StandInError(405, "name the file to upload: .../files/{name}")
    if method == "GET":
        resource = archive.find_resource(session, scan_id, ref)
        entry = next((e for e in resource.entries() if e.uri == name), None)
        file = resolve_inside(resource.path, name)
        if entry is None or not file.is_file():
            raise StandInError(404, f"the stand-in has no file {name!r} in that resource")
        return Answer(200, file.read_bytes(), "application/octet-stream")
    if method in ("PUT", "POST"):
        state.accounts.require(request, session.project, "edit")
        _require_justification(state, request)  # FileList.handlePut -> buildOpenWorkflow
        try:
            resource = archive.find_resource(session, scan_id, ref)
        except StandInError:
            if ref.isdigit():
                raise
            resource = archive.create_resource(session, scan_id, ref, fmt=None, content=None)
        return _upload(request, resource, name)
    if method == "DELETE":
        state.accounts.require(request, session.project, "delete")
        resource = archive.find_resource(session, scan_id, ref)
        catalog = resource.catalog_path
        # FileList.handleDelete: every entry CatalogUtils.findCatEntriesWithinPath matches (by prefix through
        # 1.8.10.1), 404 "No matched files" when none, then the workflow (so the justification) is checked,
        # then the entries are dropped from the catalog and their files removed (`removeFiles` not false).
        uris = [e.uri for e in resource.entries()] if catalog is not None else []
        matched = catalogs.files_deleted_by(name, uris, by_prefix=catalogs.deletes_by_prefix(state.files_api_version))
        if catalog is None or not matched:
            raise StandInError(404, f"the stand-in has no file {name!r} in that resource")
        _require_justification(state, request)  # WorkflowUtils.getOrCreateWorkflowData
        for uri in matched:
            file = resolve_inside(resource.path, uri)
            if file.is_file() and (request.param("removeFiles") or "true").lower() != "false":
                file.unlink()
        catalogs.rename_and_remove(catalog, {}, frozenset(matched))
        return text_answer(200, "")
    raise StandInError(405, f"the stand-in does not serve {method} on files")


def _require_justification(state: StandInState, request: Request) -> None:
    """Refuse a change without a justification or event name, when the site requires them, as XNAT does.

    XDAT's `PersistentWorkflowUtils.buildOpenWorkflow` throws JustificationAbsent ("Justification required.")
    when `requireChangeJustification` (with `showChangeJustification`) is set and `event_reason` is blank, and
    ActionNameAbsent ("Event name required.") when `requireEventName` is set and `event_action` is blank.
    FileList.handlePut / handleDelete and CatalogResource.handlePut catch them as any Exception and answer 500
    with the message as Restlet's status description. The catalog refresh never needs one: DefaultCatalogService.
    _refreshCatalog writes its own reason ("Refreshed catalog for resource ...").
    """
    message = None
    if state.require_justification and not (request.param("event_reason") or "").strip():
        message = "Justification required."
    elif state.require_event_name and not (request.param("event_action") or "").strip():
        message = "Event name required."
    if message is not None:
        # Restlet puts the description in the status line and answers its own HTML status page.
        page = f"<html><head><title>Status page</title></head><body><p>{message}</p></body></html>"
        raise Answer(500, page.encode(), "text/html; charset=utf-8", reason=message)


def _upload(request: Request, resource: Resource, name: str) -> Answer:
    content_type = request.headers.get("Content-Type") or ""
    data = request.body
    if content_type.lower().startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + data)
        parts = [p for p in message.iter_parts() if p.get_filename() is not None] if message.is_multipart() else []
        if not parts:
            raise StandInError(400, "the multipart upload has no file part")
        payload = parts[0].get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    target = resolve_inside(resource.path, name)
    entries = resource.entries()
    existing = next((e for e in entries if e.uri == name), None)
    if target.exists() and not request.flag("overwrite"):
        # CatalogUtils.storeCatalogEntry (xnat-web through 1.8.10.1): a name whose file exists on disk (in the
        # catalog or not) is a duplicate and nothing is written; FileList.handlePut then answers 200 with
        # {"duplicates": [...]} as text/html. XNAT never answers 409 here.
        return html_answer(200, json.dumps({"duplicates": [name]}))
    target.parent.mkdir(parents=True, exist_ok=True)
    if request.flag("__standin_partial_upload"):
        target.write_bytes(data[: len(data) // 2])
        raise StandInError(500, "the stand-in was told to fail this upload midway (fault switch)")
    temporary = target.with_name(f".{target.name}.standin-upload")
    temporary.write_bytes(data)
    os.replace(temporary, target)
    digest = hashlib.md5(data).hexdigest()
    catalog = resource.ensure_catalog()
    if existing is not None:
        catalogs.set_digests(catalog, {name: digest})
    else:
        user = request.user
        catalogs.add_entries(catalog, lambda prefix: [catalogs.plain_entry_xml(
            prefix, name, digest=digest, fmt=request.param("format"), content=request.param("content"),
            user=user, when=now_text())])
    return text_answer(200, "")


# --- /data/services/refresh/catalog ---------------------------------------------------------------


def _refresh(state: StandInState, request: Request) -> Answer:
    archive = state.archive
    targets = request.query.get("resource") or []
    if not targets:
        raise StandInError(400, "name at least one resource to refresh: ?resource=/archive/...")
    options = {o.strip() for v in request.query.get("options", []) for o in v.split(",") if o.strip()}
    unknown = options - {"checksum", "delete", "append", "populateStats"}
    if unknown:
        raise StandInError(400, f"unknown refresh options: {sorted(unknown)}")
    with archive.lock:
        resources: list[Resource] = []
        for target in targets:
            resources += _refresh_targets(state, request, target)
        for resource in resources:
            _refresh_resource(resource, options, request.user)
    return text_answer(200, "")


def _refresh_targets(state: StandInState, request: Request, target: str) -> list[Resource]:
    archive = state.archive
    parts = normalise(target)
    if parts[:1] == ["data"]:
        parts = parts[1:]
    if parts[:1] == ["archive"]:
        parts = parts[1:]
    pairs: dict[str, str] = {}
    for key, value in zip(parts[::2], parts[1::2], strict=False):
        pairs[key] = value
    if "experiments" not in pairs:
        raise StandInError(400, f"the stand-in refreshes sessions, scans and resources, not {target!r}")
    session = archive.find_session(pairs["experiments"], pairs.get("projects"))
    state.accounts.require(request, session.project, "edit")
    scan_id = pairs.get("scans")
    if "resources" in pairs:
        return [archive.find_resource(session, scan_id, pairs["resources"])]
    if scan_id is not None:
        return archive.resources_of(session, scan_id)
    return archive.resources_of(session, None, all_levels=True)


def _refresh_resource(resource: Resource, options: set[str], user: str) -> None:
    catalog = resource.catalog_path
    if catalog is None:
        if "append" not in options:
            return
        catalog = resource.ensure_catalog()
    entries = resource.entries()
    if "delete" in options:
        gone = frozenset(e.uri for e in entries if not (resource.path / e.uri).is_file())
        if gone:
            catalogs.rename_and_remove(catalog, {}, gone)
            entries = [e for e in entries if e.uri not in gone]
    if "checksum" in options:
        missing = {e.uri: catalogs.md5_of(resource.path / e.uri) for e in entries
                   if not e.digest and (resource.path / e.uri).is_file()}
        if missing:
            catalogs.set_digests(catalog, missing)
    if "append" in options:
        known = {e.uri for e in entries}
        new = []
        for file in sorted(resource.path.rglob("*")):
            relative = file.relative_to(resource.path).as_posix()
            if (file.is_file() and relative not in known and not file.name.endswith(catalogs.CATALOG_SUFFIX)
                    and not any(part.startswith(".") for part in relative.split("/"))):
                new.append((relative, catalogs.md5_of(file) if "checksum" in options else None))
        if new:
            when = now_text()
            catalogs.add_entries(catalog, lambda prefix: [
                catalogs.plain_entry_xml(prefix, rel, digest=digest, fmt=None, content=None, user=user, when=when)
                for rel, digest in new])
    # populateStats: the stand-in computes counts and sizes on every listing, nothing to store.


# --- /data/search/elements -------------------------------------------------------------------------

#: The display fields the stand-in lists for its data types (xnatpy reads them on connect).
_SEARCH_FIELDS = {
    "xnat:projectData": ("ID", "NAME", "SECONDARY_ID", "DESCRIPTION"),
    "xnat:subjectData": ("SUBJECT_ID", "SUBJECT_LABEL", "PROJECT", "INSERT_DATE"),
    SESSION_XSI_TYPE: ("SESSION_ID", "LABEL", "PROJECT", "SUBJECT_ID", "DATE", "INSERT_DATE"),
}


def _search_elements(rest: list[str]) -> Answer:
    if not rest:
        rows = [{"ELEMENT_NAME": name, "SINGULAR": name.split(":")[1], "PLURAL": name.split(":")[1], "COUNT": "0",
                 "SECURED": "true"} for name in _SEARCH_FIELDS]
        return json_answer(200, result_set(rows, "Elements"))
    fields = _SEARCH_FIELDS.get("/".join(rest))
    if fields is None:
        raise StandInError(404, f"the stand-in has no search element {'/'.join(rest)!r}")
    rows = [{"FIELD_ID": f, "HEADER": f.lower(), "SUMMARY": "", "TYPE": "string", "REQUIRES_VALUE": "false",
             "DESC": "", "ELEMENT_NAME": "/".join(rest), "SRC": "0"} for f in fields]
    return json_answer(200, result_set(rows, "Fields"))
