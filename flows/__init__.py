"""stateward.flows: reserved for the next issues."""

__all__: tuple[str, ...] = ()
