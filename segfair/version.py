"""The package version, in a module of its own: every layer may read it without importing the
package's public API (``segfair/__init__.py`` names modules of every layer)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
