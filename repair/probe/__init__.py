"""Probes: the edge of qfix that reads the machine and the target Python environment."""
