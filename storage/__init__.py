"""Persistence: SQLAlchemy 2 models, sessions, repositories, outbox, migrations; imports nothing of ours."""
