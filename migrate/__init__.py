"""smets1-migrate: move GB SMETS1 smart meter installations onto the DCC's network.

The library is `migrate.api`; the `migrate` command is a thin shell over it.
"""

__version__ = "0.1.0"
