"""Job functions: the work behind the CLI, callable from tests, the demo and Ray jobs.

Jobs print nothing themselves except through the optional progress hooks they take; the
Typer sub-apps in `pipelines/cli_*.py` are thin wrappers that format their results.
"""
