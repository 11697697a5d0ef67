"""PNG plots for the toolkit (profile, calibrate): matplotlib, loaded only when a plot is asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugal.errors import FrugalError


def pyplot(option: str = "--plot") -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display), or a clear error without it
    naming ``option``, the flag that asked for a plot."""
    try:
        import matplotlib
    except ImportError:
        raise FrugalError(f"{option} needs matplotlib", hint="pip install 'frugal[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    """Write the PNG and close the figure, whether or not the write worked."""
    try:
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise FrugalError(f"{path}: cannot write the plot: {exc}") from None
    finally:
        pyplot().close(fig)


__all__ = ["pyplot", "save_figure"]
