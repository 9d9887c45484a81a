"""What execution made of a plan: per action, per catalog, per resource. Both executors return these."""

from __future__ import annotations

from dataclasses import dataclass

from container_app.core.plan import Action, ResourcePlan
from container_app.core.vocabulary import Outcome, ResourceStatus, Step


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    outcome: Outcome
    backup_path: str | None = None
    error: str | None = None
    failed_step: Step | None = None


@dataclass(frozen=True, slots=True)
class CatalogResult:
    path: str
    backup_path: str | None
    original_sha256: str | None
    new_sha256: str | None
    renamed: int
    removed: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceResult:
    plan: ResourcePlan
    status: ResourceStatus
    backup_folder: str
    actions: tuple[ActionResult, ...]
    catalog: CatalogResult | None = None
    reason: str | None = None
