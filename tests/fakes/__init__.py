"""Fakes at process boundaries: stand-ins for the driver's libraries and tools."""
