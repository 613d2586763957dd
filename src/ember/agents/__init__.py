"""Agents: specialists (tools) behind one registry, the planner that splits a request into steps, the one
step loop that runs them within budgets, and the router `ember-auto` uses."""
