"""`python -m ember.cli …`: the `ember` command."""

from ember.cli import main

main()
