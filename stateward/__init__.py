"""stateward: structured state management for cloud resources.

The library is its layers, each a subpackage: :mod:`stateward.runtime` (actors, supervision,
state machines, the durable store), :mod:`stateward.flows` (durable flows of tasks with
revert), :mod:`stateward.actors` (the cloud domain) and :mod:`stateward.bench` (benchmarks
and the ``stateward`` command). This package itself only says which version is installed.
"""

from __future__ import annotations

import pkgutil
from importlib import metadata

# The layers are installed beside this file, but in a checkout this folder holds only the
# package root: a copy of it found first on ``sys.path`` (the working directory of
# ``python -m stateward`` in the repository) must still find them where they are installed.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__: str = metadata.version("stateward")

__all__ = ("__version__",)
