"""Reliability checks run against a live Ember server: load, soak and crash durability.

Each check starts or targets a server on loopback only, is bounded in request count and time, and writes
its numbers to a report; none of them is a pass/fail unit test (the fast parts have tests under tests/).
"""
