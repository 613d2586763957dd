"""Quality evaluations on real data (`ember eval speech|health|reasoning|vision|auto|recs`). They measure and
report; they assert nothing."""
