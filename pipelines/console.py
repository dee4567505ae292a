"""The one rich Console every command prints through."""

from __future__ import annotations

from rich.console import Console

console = Console()
