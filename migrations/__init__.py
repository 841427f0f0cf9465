"""Alembic migrations of the hypersweep database (``hypersweep db upgrade``)."""
