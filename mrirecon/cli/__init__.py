"""The ``mrirecon`` command and what its subcommands share."""
