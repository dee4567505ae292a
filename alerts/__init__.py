"""Alert rules, their evaluation, and notifications by webhook, email and Kafka (seed §2.5)."""
