"""The pieces without a server: retries, redaction, scan URIs, comparing XNAT's survey with ours, choosing the
executor. (Marked like the other XNAT tests: they skip together without the conformance data.)
"""

from __future__ import annotations

import os

import pytest

from container_app.mitigation.xnat.client import RetryPolicy, display_path, public_url
from container_app.mitigation.xnat.redact import Redactor
from container_app.mitigation.xnat.server_reports import compare_surveys
from container_app.mitigation.xnat.target import parse_scan_uri
from tests.helpers.xnat import requires_conformance

pytestmark = requires_conformance


def test_retry_policy_is_bounded() -> None:
    assert list(RetryPolicy(attempts=5, backoff_s=1, max_backoff_s=3).delays()) == [1, 2, 3, 3]
    assert list(RetryPolicy(attempts=1).delays()) == []


def test_redactor_and_paths_keep_secrets_and_names_out() -> None:
    redact = Redactor(["s3cret/+x", None, "ab"])
    assert redact("pw=s3cret/+x or s3cret%2F%2Bx JSESSIONID=ABC123; x") == "pw=*** or *** JSESSIONID=***; x"
    assert public_url("https://user:pw@xnat.example.org/xnat/") == "https://xnat.example.org/xnat"
    assert display_path("/data/experiments/E/scans/5/resources/DICOM/files/Doe_Jane.dcm?inbody=true") == \
        "/data/experiments/E/scans/5/resources/DICOM/files/<file>"


def test_scan_uris() -> None:
    assert parse_scan_uri("/experiments/XNAT_E00001/scans/5") == ("XNAT_E00001", "5")
    assert parse_scan_uri("/archive/projects/P/subjects/S/experiments/E1/scans/7") == ("E1", "7")
    with pytest.raises(Exception, match="not a scan URI"):
        parse_scan_uri("/experiments/E1")


def test_survey_comparison_tells_template_from_disagreement() -> None:
    from container_app.core.plan import FileState, ResourcePlan
    from container_app.core.vocabulary import RequestStatus

    plan = ResourcePlan("SCANS/5/DICOM", {}, None, RequestStatus.DIVERGENT, (), (),
                        tuple(FileState(f"SCANS/5/DICOM/{n}", 1, 1, None) for n in ("a.dcm", "b.dcm")), 0, 0)
    ours = {"xnat": {"mismatchedFiles": {"SCANS/5/DICOM/a.dcm": "A.dcm"}, "duplicates": {}},
            "files": [{"path": "SCANS/5/DICOM/a.dcm", "sopClassUID": "1", "sopInstanceUID": "2"}]}
    same = {"mismatchedFiles": {"/srv/archive/P/arc001/S/SCANS/5/DICOM/a.dcm": "A.dcm"}}
    assert compare_surveys(plan, ours, same)["verdict"] == "agree"
    other = {"mismatchedFiles": {"/srv/x/SCANS/5/DICOM/a.dcm": "Z.dcm"}}
    assert compare_surveys(plan, ours, other)["verdict"] == "template"
    content_with_it = {"uids": {"1": ["2"]}}  # XNAT saw the file and found its name right
    assert compare_surveys(plan, ours, content_with_it)["verdict"] == "template"
    more = {"mismatchedFiles": {"/srv/a.dcm": "A.dcm", "/srv/b.dcm": "B.dcm"}}
    verdict = compare_surveys(plan, ours, more)
    assert verdict["verdict"] == "disagree" and verdict["filesSeenByOneSurveyOnly"] == 1


def test_auto_picks_xnat_inside_xnat_on_a_read_only_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    from container_app.cli.main import parse_settings
    from container_app.mitigation.run import _wants_xnat

    settings = parse_settings(["mitigate", "/input", "--output", "/output"])
    monkeypatch.setenv("XNAT_HOST", "http://xnat")
    monkeypatch.setattr(os, "access", lambda *_: False)
    assert _wants_xnat(settings, "/input")  # type: ignore[arg-type]
    monkeypatch.setattr(os, "access", lambda *_: True)
    assert not _wants_xnat(settings, "/input")  # type: ignore[arg-type]
    monkeypatch.delenv("XNAT_HOST")
    monkeypatch.setattr(os, "access", lambda *_: False)
    assert not _wants_xnat(settings, "/input")  # type: ignore[arg-type]


def test_names_that_are_not_utf8_are_refused_for_xnats_rest_paths() -> None:
    from container_app.mitigation.xnat.file_operations_way import rest_name_problem

    undecodable = os.fsdecode(b"SCANS/1/DICOM/\xff.dcm")  # as the survey reads such a name (surrogateescape)
    problem = rest_name_problem(undecodable)
    assert problem is not None and "not UTF-8" in problem
    assert rest_name_problem("SCANS/1/DICOM/Müller.dcm") is None and rest_name_problem(None) is None
