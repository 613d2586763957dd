"""Thin routes: parse the request, call the serving layer or the store, shape the response."""
