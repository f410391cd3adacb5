"""The staging store: SQLAlchemy Core tables, schema versions, bulk staging, request states."""
