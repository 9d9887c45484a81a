"""One module per command: its arguments (`add_parser`), its settings (`settings_from`) and its handler (`run`).

The library is imported inside the handlers, not at the top: building the parser (for `--help` or a usage
error) stays fast, and a library module that fails to import is reported by `main` as one line, not a traceback.
"""
