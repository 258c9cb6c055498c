"""The metadata store: SQLAlchemy rows, Alembic migrations, and a repository of resources."""
