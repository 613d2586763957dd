"""Intake: turn what a client sent into what modes read (audio → text now; images later)."""
