"""The Repository contract, run against every backend (see conftest.py): SQLite and PostgreSQL
must agree on every answer, ordering included."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from sabio.store import database
from sabio.store.entities import ListQuery, Resource
from sabio.store.repository import AlreadyExists, Repository
from sabio.store.rows import Base

T0 = 1_700_000_000.0


def arn_of(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:us-east-1:123456789012:{kind}/{name.lower()}"


def make(
    name: str,
    *,
    kind: str = "model",
    status: str | None = None,
    created: float = T0,
    updated: float | None = None,
    spec: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> Resource:
    return Resource(
        kind=kind,
        name=name,
        arn=arn_of(kind, name),
        spec=spec if spec is not None else {"Name": name},
        created_at=created,
        updated_at=created if updated is None else updated,
        status=status,
        state=state or {},
    )


def names(resources: list[Resource]) -> list[str]:
    return [r.name for r in resources]


def listed(repo: Repository, kind: str = "model", **query: Any) -> list[str]:
    return names(repo.list(kind, ListQuery(**query)))


# Backend setup


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = database.create(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'sabio.db'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 10000
        assert (tmp_path / "nested" / "dir" / "sabio.db").is_file()
    finally:
        engine.dispose()


def test_create_on_a_migrated_database_is_idempotent(database_url: str) -> None:
    first = database.create(database_url)
    try:
        Repository(first).create(make("kept"), tags={"k": "v"})
    finally:
        first.dispose()
    second = database.create(database_url)  # the migrations run again: a no-op
    try:
        repo = Repository(second)
        assert names(repo.all("model")) == ["kept"]
        assert repo.tags(arn_of("model", "kept")) == {"k": "v"}
        with second.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        head = ScriptDirectory(str(database.MIGRATIONS)).get_current_head()
        assert [v for (v,) in versions] == [head]
    finally:
        second.dispose()


def test_migrated_schema_matches_the_orm_rows(engine: Engine) -> None:
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    for name, table in Base.metadata.tables.items():
        columns = {c["name"]: c for c in inspector.get_columns(name)}
        assert set(columns) == set(table.columns.keys()), name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (name, column.name)
        primary = inspector.get_pk_constraint(name)["constrained_columns"]
        assert primary == [c.name for c in table.primary_key.columns], name
    indexed = {tuple(i["column_names"]) for i in inspector.get_indexes("resources")}
    assert {("kind",), ("created_at",)} <= indexed
    # Alembic's own comparison (what `alembic revision --autogenerate` would emit) finds nothing.
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


# Create and read


def test_create_then_get_round_trips_every_field(repo: Repository) -> None:
    spec = {"PrimaryContainer": {"Image": "img", "Environment": {"K": "välue ✓"}}, "N": [1, 2.5]}
    original = make("My-Model", status="Creating", created=T0 + 0.125, updated=T0 + 7.5, spec=spec)
    original.state = {"instances": [{"port": 8081}], "note": None}
    repo.create(original)

    got = repo.get("model", "My-Model")
    assert got == original
    assert got is not original


def test_get_and_get_by_arn_miss_return_none(repo: Repository) -> None:
    repo.create(make("present"))
    assert repo.get("model", "absent") is None
    assert repo.get("endpoint", "present") is None  # names are per kind
    assert repo.get_by_arn(arn_of("model", "absent")) is None


def test_get_is_case_insensitive_and_keeps_the_original_case(repo: Repository) -> None:
    repo.create(make("MixedCase-Name"))
    for spelling in ("MixedCase-Name", "mixedcase-name", "MIXEDCASE-NAME"):
        got = repo.get("model", spelling)
        assert got is not None
        assert got.name == "MixedCase-Name"


def test_get_by_arn(repo: Repository) -> None:
    repo.create(make("one"))
    repo.create(make("one", kind="endpoint"))
    got = repo.get_by_arn(arn_of("endpoint", "one"))
    assert got is not None
    assert (got.kind, got.name) == ("endpoint", "one")


def test_duplicate_name_raises_already_exists(repo: Repository) -> None:
    repo.create(make("dup", spec={"v": 1}), tags={"first": "1"})
    with pytest.raises(AlreadyExists):
        repo.create(make("dup", spec={"v": 2}), tags={"second": "2"})
    duplicate_in_other_case = make("DUP", spec={"v": 3})
    duplicate_in_other_case.arn = "arn:aws:sagemaker:us-east-1:123456789012:model/other-arn"
    with pytest.raises(AlreadyExists):
        repo.create(duplicate_in_other_case)

    stored = repo.get("model", "dup")
    assert stored is not None
    assert stored.spec == {"v": 1}
    # The failed creates left nothing behind, and the repository still works.
    assert repo.tags(arn_of("model", "dup")) == {"first": "1"}
    assert repo.count("model") == 1
    repo.create(make("dup", kind="endpoint"))  # the same name in another kind is fine
    assert repo.count("endpoint") == 1


def test_all_filters_by_status_in_insertion_order(repo: Repository) -> None:
    repo.create(make("c", status="InService", created=T0 + 1))
    repo.create(make("a", status="Failed", created=T0 + 3))
    repo.create(make("b", status="Creating", created=T0 + 2))
    repo.create(make("x", kind="endpoint", status="InService"))
    assert names(repo.all("model")) == ["c", "a", "b"]
    assert names(repo.all("model", ("InService", "Creating"))) == ["c", "b"]
    assert repo.all("model", ("Deleting",)) == []


def test_count_is_per_kind(repo: Repository) -> None:
    assert repo.count("model") == 0
    for i in range(3):
        repo.create(make(f"m{i}"))
    repo.create(make("e", kind="endpoint"))
    assert repo.count("model") == 3
    assert repo.count("endpoint") == 1
    assert repo.count("endpoint-config") == 0


# List: filters


def test_list_name_contains_is_case_insensitive_and_literal(repo: Repository) -> None:
    for i, name in enumerate(
        ["model-a", "MODEL-B", "xmodelx", "other", "100%", "1000", "a_b", "axb", "back\\slash"]
    ):
        repo.create(make(name, created=T0 + i))
    query = {"sort_by": "CreationTime", "descending": False}
    assert listed(repo, name_contains="Model", **query) == ["model-a", "MODEL-B", "xmodelx"]
    assert listed(repo, name_contains="%", **query) == ["100%"]
    assert listed(repo, name_contains="0%", **query) == ["100%"]
    assert listed(repo, name_contains="_", **query) == ["a_b"]
    assert listed(repo, name_contains="a_b", **query) == ["a_b"]
    assert listed(repo, name_contains="\\", **query) == ["back\\slash"]
    assert listed(repo, name_contains="nothing", **query) == []
    assert len(listed(repo, name_contains="", **query)) == 9  # empty: no filter


def test_list_time_filters_are_strict(repo: Repository) -> None:
    repo.create(make("old", created=T0, updated=T0 + 100))
    repo.create(make("mid", created=T0 + 10, updated=T0 + 10))
    repo.create(make("new", created=T0 + 20, updated=T0 + 50))
    query = {"sort_by": "CreationTime", "descending": False}

    assert listed(repo, created_after=T0, **query) == ["mid", "new"]
    assert listed(repo, created_before=T0 + 20, **query) == ["old", "mid"]
    assert listed(repo, created_after=T0, created_before=T0 + 20, **query) == ["mid"]
    assert listed(repo, created_after=T0 + 20, **query) == []
    assert listed(repo, modified_after=T0 + 10, **query) == ["old", "new"]
    assert listed(repo, modified_before=T0 + 50, **query) == ["mid"]
    assert listed(repo, modified_after=T0 + 10, modified_before=T0 + 100, **query) == ["new"]
    assert listed(repo, created_before=T0 + 15, modified_after=T0 + 60, **query) == ["old"]


def test_list_status_filter_and_kind(repo: Repository) -> None:
    repo.create(make("a", status="InService", created=T0))
    repo.create(make("b", status="Failed", created=T0 + 1))
    repo.create(make("c", status="InService", created=T0 + 2))
    repo.create(make("d", created=T0 + 3))
    repo.create(make("e", kind="endpoint", status="InService"))
    assert listed(repo, status="InService") == ["c", "a"]
    assert listed(repo, status="inservice") == []  # statuses match exactly
    assert listed(repo, status="Failed", name_contains="b") == ["b"]
    assert listed(repo) == ["d", "c", "b", "a"]


# List: sorting and paging


def _sorting_fixture(repo: Repository) -> None:
    rows = [  # name, status, created
        ("charlie", "InService", T0 + 2),
        ("Alpha", "Failed", T0 + 5),
        ("bravo", "InService", T0 + 1),
        ("Delta", "Creating", T0 + 4),
        ("echo", "Failed", T0 + 3),
    ]
    for name, status, created in rows:
        repo.create(make(name, status=status, created=created))


@pytest.mark.parametrize(
    ("sort_by", "ascending"),
    [
        ("Name", ["Alpha", "bravo", "charlie", "Delta", "echo"]),
        ("CreationTime", ["bravo", "charlie", "echo", "Delta", "Alpha"]),
        # Ties (same status) fall back to insertion order, reversed when descending.
        ("Status", ["Delta", "Alpha", "echo", "charlie", "bravo"]),
    ],
)
def test_list_sorts(repo: Repository, sort_by: str, ascending: list[str]) -> None:
    _sorting_fixture(repo)
    assert listed(repo, sort_by=sort_by, descending=False) == ascending
    assert listed(repo, sort_by=sort_by, descending=True) == ascending[::-1]


def test_list_unknown_sort_key_falls_back_to_creation_time(repo: Repository) -> None:
    _sorting_fixture(repo)
    assert listed(repo, sort_by="Bogus") == listed(repo, sort_by="CreationTime")


def test_list_returns_one_extra_row_when_another_page_follows(repo: Repository) -> None:
    for i in range(5):
        repo.create(make(f"m{i}", created=T0 + i))
    assert listed(repo, limit=2) == ["m4", "m3", "m2"]
    assert listed(repo, limit=2, offset=2) == ["m2", "m1", "m0"]
    assert listed(repo, limit=2, offset=4) == ["m0"]
    assert listed(repo, limit=5) == ["m4", "m3", "m2", "m1", "m0"]
    assert listed(repo, limit=2, offset=9) == []


def test_paging_is_stable_when_sort_keys_tie(repo: Repository) -> None:
    # Every row has the same creation time and only two statuses: the order among ties must be
    # the same on every page, so paging neither repeats nor skips a resource.
    for i in range(11):
        repo.create(make(f"r{i:02d}", status="A" if i % 2 else "B", created=T0))
    for sort_by in ("Name", "CreationTime", "Status"):
        for descending in (False, True):
            everything = listed(repo, sort_by=sort_by, descending=descending, limit=100)
            assert len(everything) == 11
            pages: list[str] = []
            offset, limit = 0, 3
            while True:
                page = listed(
                    repo, sort_by=sort_by, descending=descending, offset=offset, limit=limit
                )
                assert len(page) <= limit + 1
                pages.extend(page[:limit])
                if len(page) <= limit:
                    break
                offset += limit
            assert pages == everything, (sort_by, descending)


# Update and delete


def test_update_changes_fields_and_modified_time(repo: Repository) -> None:
    repo.create(make("upd", status="Creating", spec={"v": 1}, state={"s": 0}))
    before = time.time()
    updated = repo.update("model", "UPD", status="InService", state={"s": 1})
    assert updated is not None
    assert (updated.name, updated.status, updated.state, updated.spec) == (
        "upd",
        "InService",
        {"s": 1},
        {"v": 1},
    )
    assert updated.created_at == T0
    assert updated.updated_at >= before
    assert repo.get("model", "upd") == updated

    repo.update("model", "upd", spec={"v": 2})
    stored = repo.get("model", "upd")
    assert stored is not None
    assert (stored.status, stored.state, stored.spec) == ("InService", {"s": 1}, {"v": 2})


def test_update_with_expect_status(repo: Repository) -> None:
    repo.create(make("guarded", status="Creating"))
    assert repo.update("model", "guarded", status="Deleting", expect_status=("InService",)) is None
    stored = repo.get("model", "guarded")
    assert stored is not None
    assert (stored.status, stored.updated_at) == ("Creating", T0)  # untouched

    changed = repo.update(
        "model", "guarded", status="InService", expect_status=("Creating", "Updating")
    )
    assert changed is not None
    assert changed.status == "InService"


def test_update_missing_returns_none(repo: Repository) -> None:
    assert repo.update("model", "ghost", status="InService") is None
    assert repo.count("model") == 0


def test_delete_removes_the_resource_and_its_tags(repo: Repository) -> None:
    repo.create(make("doomed"), tags={"a": "1", "b": "2"})
    repo.create(make("kept"), tags={"a": "1"})
    assert repo.delete("model", "DOOMED") is True
    assert repo.get("model", "doomed") is None
    assert repo.tags(arn_of("model", "doomed")) == {}
    assert repo.tags(arn_of("model", "kept")) == {"a": "1"}
    assert repo.delete("model", "doomed") is False
    # The name (and ARN) can be used again, without the old tags.
    repo.create(make("doomed"))
    assert repo.tags(arn_of("model", "doomed")) == {}


# Tags


def test_tags_set_merge_and_delete(repo: Repository) -> None:
    arn = arn_of("model", "tagged")
    other = arn_of("model", "other")
    repo.create(make("tagged"), tags={"b": "2", "a": "1"})
    repo.create(make("other"), tags={"a": "other"})
    assert list(repo.tags(arn).items()) == [("a", "1"), ("b", "2")]  # sorted by key

    repo.set_tags(arn, {"b": "20", "c": "3"})  # merge: overwrite b, add c, keep a
    assert repo.tags(arn) == {"a": "1", "b": "20", "c": "3"}

    repo.delete_tags(arn, ["a", "c", "missing"])
    assert repo.tags(arn) == {"b": "20"}
    repo.delete_tags(arn, [])
    assert repo.tags(arn) == {"b": "20"}
    assert repo.tags(other) == {"a": "other"}
    assert repo.tags(arn_of("model", "nobody")) == {}


def test_tag_keys_are_case_sensitive(repo: Repository) -> None:
    arn = arn_of("model", "cased")
    repo.create(make("cased"))
    repo.set_tags(arn, {"Key": "upper", "key": "lower"})
    assert repo.tags(arn) == {"Key": "upper", "key": "lower"}
