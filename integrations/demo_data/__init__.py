"""Seed data of the demo back ends (YAML)."""
