"""Sales-anomaly detection: daily store panel, anomaly_cj protocol, tuning (PROTOCOLS §4)."""
