"""The generator version, stamped into every generated module's header."""

GENERATOR_VERSION = "0.1.0"
