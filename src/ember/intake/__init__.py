"""Intake: turn what a client sent into what modes read: images checked and decoded, audio heard."""
