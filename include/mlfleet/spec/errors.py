"""The one error type a wrong spec raises: it names the field, the value and what is allowed."""


class SpecError(ValueError):
    """A spec is wrong; `str(err)` is the line the user sees (no traceback)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickles with its field (a process pool, a fork)
        return type(self), (self.field, self.message)
