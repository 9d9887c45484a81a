"""The on-disk cache of compiled schemas and templates: same results, and never trusting a foreign folder."""

from __future__ import annotations

import importlib.util
import marshal
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

from container_app.support import compiled_cache
from container_app.support.compiled_cache import CACHE_ENV, cache_folder, compiled_validator, template_bytecode_cache

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}, "size": {"type": ["integer", "null"]}},
    "additionalProperties": False,
}
GOOD = [{"name": "abc"}, {"name": "x", "size": None}, {"name": "y", "size": 3}]
BAD = [{}, {"name": "ABC"}, {"name": "a", "size": "3"}, {"name": "a", "other": 1}, []]


@pytest.fixture
def cache_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    cache_folder.cache_clear()
    yield folder
    cache_folder.cache_clear()


def verdicts(validate: Any) -> list[bool]:
    out = []
    for document in GOOD + BAD:
        try:
            validate(document)
            out.append(True)
        except fastjsonschema.JsonSchemaException:
            out.append(False)
    return out


EXPECTED = [True] * len(GOOD) + [False] * len(BAD)


def forbid(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, why: str) -> None:
    def called(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(why)

    monkeypatch.setattr(owner, name, called)


def test_a_cached_validator_judges_as_a_fresh_one(cache_at: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert verdicts(fastjsonschema.compile(SCHEMA)) == EXPECTED
    first = compiled_validator(SCHEMA, {}, "key")
    assert verdicts(first) == EXPECTED
    stored = list(cache_at.glob("*/validator-*.bytecode"))
    assert len(stored) == 1

    forbid(monkeypatch, fastjsonschema, "compile_to_code", "the cached code should have been used")
    assert verdicts(compiled_validator(SCHEMA, {}, "key")) == EXPECTED


def test_the_key_covers_the_schema_and_what_it_refers_to(cache_at: Path) -> None:
    compiled_validator(SCHEMA, {}, "key")
    compiled_validator({**SCHEMA, "required": []}, {}, "key")
    compiled_validator(SCHEMA, {}, "other referenced schemas")
    assert len(list(cache_at.glob("*/validator-*.bytecode"))) == 3
    assert verdicts(compiled_validator({**SCHEMA, "required": []}, {}, "key"))[len(GOOD)] is True  # {} is valid


def test_a_damaged_cache_file_is_compiled_again(cache_at: Path) -> None:
    compiled_validator(SCHEMA, {}, "key")
    (stored,) = cache_at.glob("*/validator-*.bytecode")
    magic = importlib.util.MAGIC_NUMBER
    wrong_entries = (marshal.dumps(("validate", "not code")), marshal.dumps(("nope", compile("x = 1", "", "exec"))),
                     marshal.dumps(compile("x = 1", "", "exec")))
    for damage in (b"", b"garbage", stored.read_bytes()[:20], *(magic + entry for entry in wrong_entries)):
        stored.write_bytes(damage)
        assert verdicts(compiled_validator(SCHEMA, {}, "key")) == EXPECTED


def test_a_folder_others_can_write_is_never_read(cache_at: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled_validator(SCHEMA, {}, "key")
    folder = cache_folder()
    assert folder is not None
    os.chmod(folder, 0o777)
    cache_folder.cache_clear()
    assert cache_folder() is None
    assert template_bytecode_cache() is None

    forbid(monkeypatch, compiled_cache, "_load_code", "an untrusted cache must not be read")
    assert verdicts(compiled_validator(SCHEMA, {}, "key")) == EXPECTED


def test_a_cache_file_others_can_write_is_never_read(cache_at: Path) -> None:
    compiled_validator(SCHEMA, {}, "key")
    (stored,) = cache_at.glob("*/validator-*.bytecode")
    os.chmod(stored, 0o666)
    assert compiled_cache._load_code(stored) is None


def test_no_cache_when_the_folder_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    cache_folder.cache_clear()
    try:
        assert cache_folder() is None
        assert verdicts(compiled_validator(SCHEMA, {}, "key")) == EXPECTED
    finally:
        cache_folder.cache_clear()


def test_an_empty_setting_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "")
    cache_folder.cache_clear()
    try:
        assert cache_folder() is None
    finally:
        cache_folder.cache_clear()


def test_templates_are_cached_and_render_the_same(cache_at: Path) -> None:
    import jinja2

    loader = jinja2.DictLoader({"page.html": "<p>{{ name }}</p>{% for i in items %}<i>{{ i }}</i>{% endfor %}"})
    fresh = jinja2.Environment(loader=loader, autoescape=True)
    cached = jinja2.Environment(loader=loader, autoescape=True, bytecode_cache=template_bytecode_cache())
    context = {"name": "<Doe^Jane>", "items": [1, 2]}
    expected = fresh.get_template("page.html").render(context)
    assert cached.get_template("page.html").render(context) == expected
    assert list(cache_at.glob("*/templates/__jinja2_*"))
    again = jinja2.Environment(loader=loader, autoescape=True, bytecode_cache=template_bytecode_cache())
    assert again.get_template("page.html").render(context) == expected


def test_the_package_schemas_with_ids_and_references(cache_at: Path) -> None:
    """The report schemas have an $id (which names the generated function) and $refs between definitions."""
    from container_app.reports import schemas as report

    report._fast_validator.cache_clear()
    try:
        document = {"path": "SCANS/1/DICOM"}
        for _ in range(2):  # compiled, then from the cache
            with pytest.raises(report.ReportValidationError, match="report fails"):
                report.validate(document, "survey-report.schema.json", "resource")
            report._fast_validator.cache_clear()
        assert len(list(cache_at.glob("*/validator-*.bytecode"))) == 1
    finally:
        report._fast_validator.cache_clear()
