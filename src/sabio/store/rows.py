"""ORM rows. Each SageMaker resource is one row of `resources`: indexed columns for what lists
filter and sort on, the accepted request as `spec`, and what controllers learn as `state`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ResourceRow(Base):
    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("kind", "name_key", name="uq_resources_kind_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(256))
    name_key: Mapped[str] = mapped_column(String(256))
    arn: Mapped[str] = mapped_column(String(512), unique=True)
    status: Mapped[str | None] = mapped_column(String(64), nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    updated_at: Mapped[float] = mapped_column(Float)


class TagRow(Base):
    __tablename__ = "tags"

    arn: Mapped[str] = mapped_column(String(512), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class AsyncInvocationRow(Base):
    """One accepted InvokeEndpointAsync request, persisted before the 202 is sent; the row
    lives until the request is answered (result or failure object written)."""

    __tablename__ = "async_invocations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(256), index=True)
    inference_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[float] = mapped_column(Float, index=True)
    expires_at: Mapped[float] = mapped_column(Float)
    invocation_timeout: Mapped[float] = mapped_column(Float)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
