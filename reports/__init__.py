"""Report templates, rendering to PDF / Excel / CSV / JSON, background runs and schedules (seed §2.7)."""
