"""Ember's tooling, outside the serving package: `eval` (quality on real data), `bench` (ratios against a
reference) and `reliability` (load, soak, durability). It imports `ember`; `ember` never imports it, and the
`ember` command loads a tool only when that command runs."""
