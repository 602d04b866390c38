"""ablate: ablation studies for LLaVA-style vision-language models.

Heavy libraries (torch, transformers, mlflow) are imported lazily by the modules
that need them, so `import ablate` and the CLI's `--help`/`list` stay fast.
"""

__version__ = "0.1.0"
