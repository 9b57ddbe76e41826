"""Applying feature_repo/ to Feast's registry, as `feast apply` does, and describing it."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import FeatureStore

# The files that define the repository; a change to any of them is a new code version.
REPO_FILE_PATTERNS = ("*.py", "*.yaml")


def repo_code_version(repo_path: Path) -> str:
    """A short hash of the repository's definition files (names and contents)."""
    digest = hashlib.sha256()
    for pattern in REPO_FILE_PATTERNS:
        for path in sorted(repo_path.glob(pattern)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class RegistryContents:
    entities: dict[str, str]  # entity -> join key
    data_sources: dict[str, str]  # source -> table or query it reads
    feature_views: dict[str, list[str]]  # view -> "feature: Type"
    feature_services: dict[str, list[str]]  # service -> "view:feature"


@dataclass(frozen=True)
class ApplyResult:
    changes: list[str]  # e.g. "Created feature view subs_profile_fv"; empty: nothing changed
    contents: RegistryContents


@contextmanager
def _inside_repo(repo_path: Path) -> Iterator[None]:
    """Feast names repository modules relative to the working directory and imports them."""
    previous = Path.cwd()
    sys.path.insert(0, str(repo_path))
    os.chdir(repo_path)
    try:
        yield
    finally:
        os.chdir(previous)
        sys.path.remove(str(repo_path))


def apply_repo(store: FeatureStore, repo_path: Path) -> ApplyResult:
    """`feast apply` through the Python API: register, update and delete objects and tables."""
    from feast.diff.registry_diff import TransitionType
    from feast.project import Project
    from feast.repo_operations import extract_objects_for_apply_delete, parse_repo

    with _inside_repo(repo_path):
        repo = parse_repo(repo_path)
    if not repo.projects:  # as the CLI does: the project of feature_store.yaml
        repo.projects.append(Project(name=store.project))
    registry_diff, _, _ = store.plan(repo)
    changes = [
        _change_line(diff)
        for diff in registry_diff.feast_object_diffs
        if diff.transition_type != TransitionType.UNCHANGED and not diff.name.startswith("__")
    ]
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(
        store.project, store.registry, repo
    )
    store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    return ApplyResult(changes, describe(store))


def _change_line(diff) -> str:
    """ "Update feature view subs_profile_fv (batch_source)": what changed, without values."""
    line = f"{diff.transition_type.name.capitalize()} {diff.feast_object_type.value} {diff.name}"
    properties = sorted({p.property_name for p in diff.feast_object_property_diffs})
    return f"{line} ({', '.join(properties)})" if properties else line


def describe(store: FeatureStore) -> RegistryContents:
    """The objects the registry holds for the project, for metadata and the docs."""
    return RegistryContents(
        entities={
            e.name: e.join_key
            for e in store.list_entities(allow_cache=False)
            if not e.name.startswith("__")
        },
        data_sources={
            s.name: s.get_table_query_string() for s in store.list_data_sources(allow_cache=False)
        },
        feature_views={
            v.name: [f"{f.name}: {f.dtype}" for f in v.features]
            for v in store.list_feature_views(allow_cache=False)
        },
        feature_services={
            s.name: [f"{p.name}:{f.name}" for p in s.feature_view_projections for f in p.features]
            for s in store.list_feature_services()
        },
    )
