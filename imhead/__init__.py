"""The imHead command line, `python -m imhead <verb>` (cli.py): for pipelines and research, not part of
the add-on's zip. May import `model` (the runtime verbs only model.runtime: they run on numpy alone)."""
