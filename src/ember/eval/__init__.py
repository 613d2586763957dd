"""Quality evaluations on real data: `ember eval speech`. They measure and report; they assert nothing."""
