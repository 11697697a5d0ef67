"""``frugal export --edge``: a model as a self-contained bundle for a device (docs/edge.md)."""

from __future__ import annotations

from pathlib import Path

import click

from frugal.errors import InvalidInput, NotFound


@click.command()
@click.argument("model_ref", metavar="MODEL")
@click.option(
    "--edge",
    is_flag=True,
    required=True,
    help="Write an edge bundle (the only export there is so far).",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The bundle's folder (new or empty).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("frugal.yaml"),
    show_default=True,
    help="Where MODEL is declared.",
)
@click.option(
    "--quantize",
    type=click.Choice(["auto", "int8", "none"]),
    default="auto",
    show_default=True,
    help="int8 weights; auto keeps fp32 when the graph has nothing to quantize.",
)
@click.option(
    "--threshold",
    type=float,
    default=0.9,
    show_default=True,
    help="The gate: answers at this confidence or above stay on the device.",
)
@click.option("--endpoint", help="The server endpoint the rest goes to (written to the README).")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
@click.option(
    "--text-encoder",
    type=click.Choice(["minilm"]),
    help="MODEL is a head over sentence embeddings: bundle all-MiniLM-L6-v2 (int8 "
    "unless --quantize none) and its vocabulary, so the device takes text.",
)
def export(
    model_ref: str, edge: bool, out: Path, config_path: Path, quantize: str, threshold: float,
    endpoint: str | None, force: bool, text_encoder: str | None,
) -> None:  # fmt: skip
    """Export MODEL (name or name:version in --config) as an edge bundle: its ONNX model,
    quantized where it can be, a manifest with its sha256 and schema, and frugal_edge.py,
    which runs it with numpy and onnxruntime alone and sends what it is unsure of to a frugal
    server (EdgeCascade)."""
    from frugal.config import load_config
    from frugal.optimize.edge_export import export_edge

    config = load_config(config_path)
    model = config.find_model(model_ref)
    if model is None:
        names = ", ".join(m.key for m in config.models)
        raise NotFound(f"no model {model_ref!r} in {config_path}; declared: {names}")
    if not edge:  # pragma: no cover - click's required flag
        raise InvalidInput("only --edge exports exist", field="--edge")
    bundle = export_edge(model, out, quantize=quantize, threshold=threshold, endpoint=endpoint,
                         force=force, text_encoder=text_encoder)  # fmt: skip
    manifest = bundle.manifest
    click.echo(f"wrote {out}: model.onnx ({bundle.size_bytes:,} bytes, "
               f"{manifest['quantized'] or 'fp32'}), sha256 {manifest['sha256'][:16]}..., "
               f"gate confidence >= {threshold}")  # fmt: skip
    if "text" in manifest:
        size = (out / "encoder.onnx").stat().st_size
        click.echo(f"text encoder: encoder.onnx ({size:,} bytes, "
                   f"{manifest['text']['encoder_quantized'] or 'fp32'}) and vocab.txt")  # fmt: skip
    if manifest["note"]:
        click.echo(f"note: {manifest['note']}")


__all__ = ["export"]
