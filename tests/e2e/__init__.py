"""End-to-end tests: a package, so the `served` fixture (package scope) and its Serve app end
with these modules instead of living through the rest of the session."""
