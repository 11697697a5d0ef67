"""Exit codes of every ``frugal`` command, in one place (docs/cli.md, "Exit codes")."""

EXIT_VERDICT = 1  # the command ran and its answer is "no" (a cost gate, a broken audit chain)
EXIT_BAD_INPUT = 2  # bad config, file, option or address: the code of click's usage errors
EXIT_NOT_DELIVERED = 3  # the command ran but could not deliver its answer (a webhook failed)

__all__ = ["EXIT_BAD_INPUT", "EXIT_NOT_DELIVERED", "EXIT_VERDICT"]
