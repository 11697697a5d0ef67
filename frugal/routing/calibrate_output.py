"""How ``frugal calibrate`` shows and applies its result: tables, the accuracy-vs-$ plot, the
YAML snippet, and the in-place edit of the gate thresholds in frugal.yaml.

The edit touches only the characters of each gate's comparison (found through the YAML node
marks), so comments, order and layout stay as the user wrote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from frugal.errors import ConfigError, FrugalError
from frugal.plots import pyplot, save_figure
from frugal.routing.calibrate import Calibration
from frugal.routing.confidence import Target
from frugal.routing.sweep import Outcome


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=140)


def print_calibration(result: Calibration, console: Any = None) -> None:
    from rich.table import Table

    console = console or _console()
    c = result.cascade
    held = result.holdout_rows.size
    table = Table(
        title=f"calibrate {c.endpoint.name}: {result.calibration_rows.size} calibration and "
        f"{held} held-out items of {result.data}"
    )
    drops = result.target_kind == "max_drop"
    bound_name = _bound_name(result)  # "": at confidence 0 the bound is the point estimate
    for name in ("route", "thresholds", "calib acc", "calib $/1k",
                 "calib drop" if drops else "", bound_name, "held-out acc", "held-out $/1k",
                 "held-out drop" if drops else "", "escalated"):  # fmt: skip
        if name:
            table.add_column(name, justify="left" if name in ("route", "thresholds") else "right")

    def row(label: str, o: Outcome | None, held: Outcome | None, style: str | None = None) -> None:
        cells = [*_cells(o)]
        if drops:
            cells.append(_drop(o))
        if bound_name:
            cells.append(_number(result.bound(o)))
        cells += _cells(held)
        if drops:
            cells.append(_drop(held))
        table.add_row(label, _thresholds(o), *cells, _rate(o), style=style)

    for i, (tier, single) in enumerate(zip(result.tiers, result.singles, strict=True)):
        label = "small-only" if i == 0 else "large-only" if i == len(result.tiers) - 1 else "alone"
        # Alone, a tier is its own reference: no drop or bound to show.
        table.add_row(f"{tier.model} ({label})", "-", *_cells(single["calibration"]),
                      *(["-"] if drops else []), *(["-"] if bound_name else []),
                      *_cells(single["holdout"]),
                      *(["-"] if drops else []), "-")  # fmt: skip
    row("cascade (config now)", result.current["calibration"], result.current["holdout"])
    if result.chosen is not None:
        row("[bold]cascade (chosen)", result.chosen, result.chosen_holdout, style="green")
    if result.next_cheaper is not None:
        row("cascade (next cheaper)", result.next_cheaper, None, style="dim")
    console.print(table)
    target = (
        f"accuracy >= {result.target_value:.4f}"
        if result.target_kind == "target_accuracy"
        else f"at most {result.target_value:.4f} below large-only "
        f"(accuracy >= {result.needed_accuracy:.4f} on the calibration part)"
    )
    priced = "the measured busy time of each tier"
    if result.cascade.llm:
        priced = "the tokens each upstream reported, at its prices"
        if result.cascade.models[0].upstream is None:
            priced += ", and the measured busy time of each local tier"
    console.print(
        f"swept {len(result.points)} threshold combination(s); target: {target}; "
        f"$ per 1k items from {priced}"
    )
    if result.arrival_batch is not None:
        _print_batch_pricing(result, console)
    _print_confidence(result, console)
    if result.chosen is None:
        point = Target(result.target_kind, result.target_value, 0)
        if result.next_cheaper is not None and point.holds(result.next_cheaper):
            console.print(
                f"[red]no thresholds meet the target at {100 * result.confidence:g}% "
                f"confidence: {result.calibration_rows.size:,} calibration items cannot vouch "
                "for it (more items, a lower --confidence or a larger --max-drop would)"
            )
            return
        console.print(
            f"[red]no thresholds meet the target: the best accuracy reachable is "
            f"{result.best_accuracy:.4f}"
        )
        return
    large = result.singles[-1]["calibration"]
    assert large is not None
    saving = 1 - result.chosen.usd_per_1k / large.usd_per_1k if large.usd_per_1k else 0.0
    than = (
        f"{100 * saving:.0f}% cheaper than" if saving >= 0 else f"{-100 * saving:.0f}% dearer than"
    )
    console.print(
        f"[green]chosen: {_thresholds(result.chosen)}: {than} "
        f"large-only, {100 * result.chosen.escalation_rate:.1f}% of items escalated"
    )
    if saving <= 0:
        console.print(
            "[yellow]note: this cascade costs more than its last tier alone at this target: "
            "serve the last tier alone, or accept a larger --max-drop"
        )
    chosen_held, held_large = result.chosen_holdout, result.singles[-1]["holdout"]
    if chosen_held is not None and held_large is not None and result.target_kind == "max_drop":
        drop = held_large.accuracy - chosen_held.accuracy
        if drop > result.target_value:
            console.print(
                f"[yellow]note: on the held-out part the chosen thresholds lose {drop:.4f} "
                f"against large-only (over --max-drop {result.target_value:g}): thresholds "
                "chosen on few items are optimistic; calibrate on more data or ask for less drop"
            )


def _bound_name(result: Calibration) -> str:
    if result.confidence == 0:
        return ""
    side = "acc >=" if result.target_kind == "target_accuracy" else "drop <="
    return f"{side} @{100 * result.confidence:g}%"


def _print_confidence(result: Calibration, console: Any) -> None:
    """How sure the choice is, and what more data would buy."""
    if result.confidence == 0:
        console.print(
            "[yellow]confidence 0: thresholds chosen on the calibration items' point estimate; "
            "on new items they lose more about half of the time"
        )
        return
    console.print(
        f"thresholds tested in order from the strictest; {result.tested} tested, each bound at "
        f"{100 * result.confidence:g}% confidence (Clopper-Pearson, fixed sequence: "
        "docs/routing.md#confidence)"
    )
    nxt = result.next_cheaper
    if nxt is None:
        return
    needed = result.items_needed
    bound = result.bound(nxt)
    text = f"next cheaper thresholds {_thresholds(nxt)}: bound {_number(bound)} misses the target"
    if needed is None:
        text += "; their point estimate misses it too, so more items would not help"
    else:
        text += (
            f"; about {needed:,} calibration items (now {result.calibration_rows.size:,}) at "
            "the same rates would make them safe"
        )
    console.print(text)


def _drop(o: Outcome | None) -> str:
    return "-" if o is None or o.items == 0 else f"{o.drop:.4f}"


def _number(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _print_batch_pricing(result: Calibration, console: Any) -> None:
    """Which batch each tier was priced at, and what a small batch costs against a full one."""
    parts = []
    for tier, profile in zip(result.tiers, result.profiles, strict=True):
        if profile is not None:
            largest = profile.sizes[-1]
            text = f"{tier.model} {1e6 * profile.busy_per_item(1):.0f} µs at 1"
            if largest > 1:
                text += f", {1e6 * profile.busy_per_item(largest):.0f} µs at {largest}"
            parts.append(text)
    console.print(f"busy time per item, profiled: {'; '.join(parts)}")
    line = f"priced at the batch each tier sees when the first tier's hold {result.arrival_batch}"
    line += " items"
    if result.chosen is not None:
        sizes = ", ".join(
            f"{t.model} {b:.3g}"
            for t, b in zip(result.tiers, result.chosen.batch_sizes, strict=True)
        )
        line += f"; chosen thresholds: {sizes}"
    console.print(line)


def _cells(o: Outcome | None) -> list[str]:
    if o is None:
        return ["-", "-"]
    return [f"{o.accuracy:.4f}", f"${o.usd_per_1k:.3g}"]


def _rate(o: Outcome | None) -> str:
    return "-" if o is None else f"{100 * o.escalation_rate:.1f}%"


def _thresholds(o: Outcome | None) -> str:
    return "-" if o is None else ", ".join(f"{t:g}" for t in o.thresholds)


def gate_snippet(result: Calibration) -> str:
    """The cascade with the chosen thresholds, as YAML to paste into the endpoint."""
    assert result.chosen is not None
    lines = ["route:", "  cascade:"]
    thresholds = iter(result.chosen.thresholds)
    route = result.cascade.endpoint.route
    assert route is not None and route.cascade is not None
    for gate, tier in zip(result.cascade.gates, route.cascade, strict=True):
        if gate is None:
            lines.append(f"    - {{model: {tier.model}}}")
            continue
        value = f'"{gate.op} {next(thresholds)!r}"'
        if gate.signal == "scorer":
            accept = f"{{scorer: {gate.config.scorer}, threshold: {value}}}"
        else:
            accept = f"{{{gate.signal}: {value}}}"
        lines.append(f"    - {{model: {tier.model}, accept: {accept}}}")
    return "\n".join(lines)


def write_thresholds(path: Path, endpoint: str, thresholds: Sequence[float]) -> None:
    """Replace the comparison text of each gate of ``endpoint`` in ``path``, nothing else.

    The edited file is loaded again; if it fails to load (or its gates differ from what was
    written), the original bytes are put back and the error is raised.
    """
    import yaml

    from frugal.config import load_config

    original = path.read_bytes()
    text = original.decode("utf-8")
    nodes = _gate_nodes(yaml.compose(text), endpoint)
    if len(nodes) != len(thresholds):
        raise ConfigError(f"found {len(nodes)} gate(s) to edit, expected {len(thresholds)}",
                          file=str(path))  # fmt: skip
    edits = []
    for (node, op), threshold in zip(nodes, thresholds, strict=True):
        quote = node.style if node.style in ("'", '"') else '"'  # a plain `>=` would be YAML syntax
        edits.append((node.start_mark.index, node.end_mark.index,
                      f"{quote}{op} {float(threshold)!r}{quote}"))  # fmt: skip
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    try:
        path.write_bytes(text.encode("utf-8"))
        config = load_config(path)
        written = next(e for e in config.endpoints if e.name == endpoint)
        gates = [t.accept.comparison[1] for t in written.route.cascade if t.accept]  # type: ignore[union-attr]
        if gates != [float(t) for t in thresholds]:
            raise ConfigError(f"the edit gave thresholds {gates}", file=str(path))
    except (FrugalError, StopIteration, OSError) as exc:
        path.write_bytes(original)
        raise ConfigError(
            f"editing the thresholds broke the file, so it was left as it was: {exc}",
            file=str(path),
            hint="paste the snippet printed without --write by hand",
        ) from None


def _gate_nodes(root: Any, endpoint: str) -> list[tuple[Any, str]]:
    """The scalar nodes holding each gate's comparison, and the comparison's operator."""
    from frugal.config import parse_comparison

    def get(mapping: Any, key: str) -> Any:
        for k, v in getattr(mapping, "value", []) if _is_map(mapping) else []:
            if k.value == key:
                return v
        return None

    for entry in getattr(get(root, "endpoints"), "value", []):
        if _is_map(entry) and getattr(get(entry, "name"), "value", None) == endpoint:
            out = []
            for tier in get(get(entry, "route"), "cascade").value:
                accept = get(tier, "accept")
                if accept is None:
                    continue
                node = next(
                    get(accept, k)
                    for k in ("confidence", "margin", "mean_logprob", "threshold")
                    if get(accept, k)
                )
                out.append((node, parse_comparison(node.value)[0]))
            return out
    return []


def _is_map(node: Any) -> bool:
    import yaml

    return isinstance(node, yaml.MappingNode)


def plot_calibration(result: Calibration, path: Path) -> None:
    """Accuracy against $ per 1k items: every combination, the frontier, the chosen point and
    each tier alone, on the calibration part."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p.usd_per_1k for p in result.points], [p.accuracy for p in result.points],
               s=8, color="tab:blue", alpha=0.25, label="threshold combinations")  # fmt: skip
    ax.plot([p.usd_per_1k for p in result.frontier], [p.accuracy for p in result.frontier],
            "-", color="tab:blue", label="Pareto frontier")  # fmt: skip
    markers = ("s", "D", "^", "v")
    for i, (tier, single) in enumerate(zip(result.tiers, result.singles, strict=True)):
        o = single["calibration"]
        assert o is not None
        ax.scatter([o.usd_per_1k], [o.accuracy], marker=markers[i % 4], s=60, color="black",
                   zorder=3, label=f"{tier.model} alone")  # fmt: skip
    if result.chosen is not None:
        ax.scatter([result.chosen.usd_per_1k], [result.chosen.accuracy], marker="*", s=220,
                   color="tab:red", zorder=4,
                   label=f"chosen: {_thresholds(result.chosen)}")  # fmt: skip
    ax.axhline(result.needed_accuracy, color="gray", linestyle=":", label="target")
    ax.set_xlabel("$ per 1k items")
    ax.set_ylabel("accuracy (calibration part)")
    ax.set_title(f"calibrate {result.cascade.endpoint.name}")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


__all__ = ["gate_snippet", "plot_calibration", "print_calibration", "write_thresholds"]
