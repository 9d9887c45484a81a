"""The project's one exception hierarchy. Only `cli` turns these into exit codes."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FINDINGS = 1  # divergent with --fail-on-divergent, or a mitigation that left errors
    USAGE = 2
    FAILURE = 3


class SurveyError(Exception):
    """Base of every error this package raises on purpose. The message is for the user."""

    exit_code = ExitCode.FAILURE


class UsageError(SurveyError):
    """The user asked for something that cannot be done as asked."""

    exit_code = ExitCode.USAGE


class TemplateError(UsageError):
    """An invalid naming template."""


class ReportError(SurveyError):
    """A report that cannot be read, or that fails its schema."""


class ReportValidationError(ReportError):
    """A report we produced fails its own schema: a bug, never written out."""


class MitigationError(SurveyError):
    """A mitigation cannot start or continue safely."""


class LockedError(MitigationError):
    """Another mitigation holds the lock on a resource or run."""


class XnatError(SurveyError):
    """XNAT answered with an error, or did not answer."""


class ItemProblem(SurveyError):
    """One file, catalog or resource cannot be handled. The run goes on; its report says why (the message)."""


class FileProblem(ItemProblem):
    """One file (or catalog) cannot be handled: it changed, a backup cannot be verified, a path is unsafe."""


class CatalogError(FileProblem):
    """A resource catalog that cannot be read or rewritten: not well-formed, not UTF-8, or with a DTD."""


class ResolveProblem(ItemProblem):
    """A surveyed resource cannot be matched to an XNAT object."""
