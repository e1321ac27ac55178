"""One module per `zenserve` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args)``."""
