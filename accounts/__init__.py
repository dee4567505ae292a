"""Users, roles, permissions, tokens, sessions and the audit log (seed §2.6, §6)."""
