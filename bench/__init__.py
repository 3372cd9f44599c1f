"""stateward.bench: benchmarks against peers and the command line."""

__all__: tuple[str, ...] = ()
