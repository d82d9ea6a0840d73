"""Lowering: every code-shaping decision about a spec, made here as plain data."""
