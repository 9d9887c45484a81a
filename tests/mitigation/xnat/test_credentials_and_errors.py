"""Credentials, permissions, no server, and a session XNAT cannot match: clear messages, exit codes, nothing changed,
no secret shown.
"""

from __future__ import annotations

import shutil
import socket
from typing import Any

import pytest

from tests.helpers.xnat import (
    CATALOG,
    PROJECT,
    Site,
    clean,
    mitigate,
    requires_conformance,
    tree,
    xnat_env,
)

standin_package = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
run_standin = standin_package.run_standin
pytestmark = requires_conformance


def test_bad_credentials_exit_3_with_a_permissions_message(site: Site, standin: Any) -> None:
    alias, secret = standin.issue_token("admin")
    before = tree(site.session)
    run = mitigate(site, {"XNAT_HOST": standin.url, "XNAT_USER": alias, "XNAT_PASS": secret + "x"})
    clean(run, secret, alias)
    assert run.returncode == 3
    assert "permissions" in run.stdout and "401" in run.stdout
    assert tree(site.session) == before


def test_an_expired_token_is_about_permissions(site: Site, standin: Any) -> None:
    alias, secret = standin.issue_token("admin")
    standin.invalidate_token(alias)
    run = mitigate(site, {"XNAT_HOST": standin.url, "XNAT_USER": alias, "XNAT_PASS": secret})
    clean(run, secret, alias)
    assert run.returncode == 3 and "permissions" in run.stdout


def test_a_member_without_owner_rights_is_told_so(site: Site) -> None:
    with run_standin(site.archive, users={"admin": "secret", "bob": "bobpass"},
                     roles={"bob": {PROJECT: "member"}}) as server:
        env = xnat_env(server, "bob")
        before = tree(site.session)
        run = mitigate(site, env)
        clean(run, env["XNAT_PASS"])
        assert run.returncode == 3
        assert "owner rights" in run.stdout and "403" in run.stdout
        assert tree(site.session) == before


def test_no_server_gives_a_clear_message(site: Site) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    run = mitigate(site, {"XNAT_HOST": f"http://127.0.0.1:{port}", "XNAT_USER": "admin", "XNAT_PASS": "s3cret-pass"})
    clean(run, "s3cret-pass")
    assert run.returncode == 3
    assert "cannot reach XNAT" in run.stdout and "Nothing was changed" in run.stdout


def test_missing_credentials_are_explained(site: Site) -> None:
    run = mitigate(site, {"XNAT_HOST": "http://127.0.0.1:9"})
    clean(run)
    assert run.returncode == 3 and "XNAT_USER and XNAT_PASS" in run.stdout


def test_the_session_id_is_needed_when_the_mount_does_not_show_it(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    run = mitigate(site, env, session=None)
    clean(run)
    assert run.returncode == 1
    (resource,) = run.report()["resources"]
    assert "--xnat-session" in resource["statusReason"]


def test_a_wrong_session_id_changes_nothing(site: Site, standin: Any) -> None:
    other = site.archive / PROJECT / "arc001" / "OTHER" / "SCANS" / "5" / "DICOM"
    other.mkdir(parents=True)
    shutil.copy2(site.resource / CATALOG, other / CATALOG)  # same project, different files
    env = xnat_env(standin)
    before = tree(site.session)
    run = mitigate(site, env, session=standin.experiment_id(PROJECT, "OTHER"))
    clean(run)
    assert run.returncode == 1
    assert tree(site.session) == before
