"""Modes are what the API calls models: `ember-instant`, and later thinking, contemplating, auto…"""
