"""Thin routes: parse, call the pipeline, shape the response."""
