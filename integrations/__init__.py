"""Integrations (seed §2.8): the stream's message schemas and idempotent warehouse writer, the
POS / inventory / CRM sync batches of the integration API, and outbound webhooks.

Imports `core` only; `serving/routers/integrations.py` exposes it over HTTP and
`pipelines/stream_consumer.py` feeds the same writer from Kafka.
"""
