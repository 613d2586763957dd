"""Packaged model assets: which registry packages carry which model file, and how to assemble it."""
