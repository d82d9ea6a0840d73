"""Translate foreign weight layouts and formats into lstmgen's (Keras's) layout; no maths here."""
