"""One module per ``tedchat`` command: ``add_parser(sub, parents)`` and ``run(args)``."""
