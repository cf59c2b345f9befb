"""One error type for every configuration check in minigpt, and one way to raise it."""


class ConfigError(ValueError):
    """A setting that cannot work; the message is one line that says what to change."""


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless `condition` holds."""
    if not condition:
        raise ConfigError(message)
