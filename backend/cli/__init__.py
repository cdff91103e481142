"""The command line, `python -m backend`: one module per subcommand, the scene arguments they share, and the
protocols a program that runs it reads (protocol.py)."""
