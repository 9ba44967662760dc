"""Repair scenarios run end to end by `nox -s repairs` (see docs/repairs.md)."""
