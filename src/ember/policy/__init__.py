"""Policy, between intake and routing: who is asking (keys), how much they may ask (limits), and what
may be kept about them (privacy)."""
