"""User-facing errors: the CLI prints their message as one line and exits with their code, no traceback."""


class FinchError(Exception):
    """A problem the user can fix: the message names the file, field or flag, what is wrong and what to do."""

    exit_code = 1


class UsageError(FinchError):
    """Bad flags, config keys or references: exit code 2, like a command-line usage error."""

    exit_code = 2


class SettingError(UsageError):
    """A config key with a value it cannot take: names the key (the CLI tells it as the flag that set it)."""

    def __init__(self, where: str, key: str, problem: str):
        super().__init__(f"{where}: {key}: {problem}")
        self.key, self.problem = key, problem


class RenamedSetting(FutureWarning):
    """A setting spelled the old way: still accepted for one release; the CLI shows it as one line."""
