"""Built-in model components, one folder per kind. See `contracts.py` for what builders return."""
