"""``hdsl xai ...``: train the learned in-painter; write tables and figures for a spec's XAI properties."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hdsl.commands import one_of, output_file, positive_seconds
from hdsl.constants import SEED_MAX

xai_app = typer.Typer(help="XAI faithfulness: learned in-painter, reports with figures.", no_args_is_help=True)


def read_images(path: str, layout: str = "auto"):
    """Images from .npz (array ``x``/``images``/the first one), .npy, or a folder of PNG/JPEG files,
    as float32 NCHW in [0, 1] when the file holds 8-bit values."""
    import numpy as np
    import torch

    from hdsl.diagnostics import HdslError

    p = Path(path)
    if not p.exists():
        raise HdslError.single("X070", f"images not found: {path}", path=path)
    try:
        if p.is_dir():
            import matplotlib.image as mpimg

            files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
            if not files:
                raise HdslError.single("X071", f"no PNG/JPEG images in {path}", path=path)
            arr = np.stack([np.asarray(mpimg.imread(str(f)), dtype=np.float32) for f in files])
            if arr.ndim == 3:
                arr = arr[..., None]
            arr = arr[..., :3] if arr.shape[-1] == 4 else arr
        elif p.suffix == ".npz":
            with np.load(p) as d:
                key = next((k for k in ("x", "images", "X") if k in d.files), d.files[0] if d.files else None)
                if key is None:
                    raise HdslError.single("X071", f"{path} holds no arrays", path=path)
                arr = np.asarray(d[key])
        elif p.suffix == ".npy":
            arr = np.load(p)
        else:
            raise HdslError.single("X071", f"unsupported image file {path}", path=path,
                                   hint="use .npz, .npy or a folder of PNG/JPEG files")
    except HdslError:
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable input is a user error
        raise HdslError.single("X071", f"cannot read images from {path}: {exc}", path=path) from None
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise HdslError.single("X072", f"expected images [N, H, W, C] or [N, C, H, W], got shape {list(arr.shape)}",
                               path=path)
    if layout == "auto":
        layout = "nhwc" if arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4) else "nchw"
    if layout == "nhwc":
        arr = arr.transpose(0, 3, 1, 2)
    x = arr.astype(np.float32)
    if arr.dtype == np.uint8 or x.max() > 1.5:
        x = x / 255.0
    return torch.from_numpy(np.ascontiguousarray(x))


@xai_app.command("train-inpainter")
def train_inpainter_cmd(
    images: str = typer.Option(..., "--images", help="training images: .npz, .npy or a folder of PNG/JPEG"),
    out: str = typer.Option(..., "--out", callback=output_file, help="where to save the in-painter (.pt)"),
    epochs: int = typer.Option(20, min=1, help="passes over the images"),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    width: int = typer.Option(16, min=1, help="channels of the first U-Net level"),
    seed: int = typer.Option(0, min=0, max=SEED_MAX),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", callback=positive_seconds,
                                                help="stop training after this long"),
    layout: str = typer.Option("auto", callback=one_of("auto", "nhwc", "nchw"), help="auto, nhwc or nchw"),
) -> None:
    """Train the U-Net in-painter used by `removal learned("FILE")` on your images, and save it."""
    from hdsl.xai.inpaint_unet import save_inpainter, train_inpainter

    x = read_images(images, layout)
    typer.echo(f"training on {x.shape[0]} images {list(x.shape[1:])} (values {float(x.min()):.3g}..{float(x.max()):.3g})")
    model, rep = train_inpainter(x, epochs=epochs, batch_size=min(batch_size, x.shape[0]), width=width, seed=seed,
                                 max_seconds=max_seconds, log=typer.echo)
    save_inpainter(model, out, {"images": str(images), "n": int(x.shape[0]), "epochs": rep.epochs,
                                "steps": rep.steps, "seed": seed, "final_l1": rep.final_loss,
                                "start_l1": rep.baseline_loss})
    typer.echo(f"saved {out}: L1 on removed pixels {rep.final_loss:.4f} (untrained start, normalised "
               f"convolution: {rep.baseline_loss:.4f}); {rep.steps} steps in {rep.seconds:.1f}s")


@xai_app.command("report")
def report_cmd(
    spec_file: str = typer.Argument(..., help="the .hspec file"),
    out: str = typer.Option("xai_report", "--out", help="folder for the tables (.md) and figures (.png)"),
    images: int = typer.Option(4, min=1, help="images shown in the removal figure"),
    fraction: float = typer.Option(0.25, min=0.0, max=1.0,
                                   help="share of MoRF features removed in the removal figure"),
) -> None:
    """Compute the spec's faithfulness properties and write tables and PNG figures."""
    from hdsl.check import check_file
    from hdsl.cli import print_diagnostics
    from hdsl.diagnostics import HdslError
    from hdsl.lower import lower
    from hdsl.xai import handler, metrics
    from hdsl.xai.ir import ExplainerComparison, Faithfulness
    from hdsl.xai.removal import make_removal
    from hdsl.xai.report import comparison_markdown, plot_curves, plot_removals

    spec = check_file(spec_file)
    if not spec.ok:
        raise HdslError(spec.diagnostics)
    print_diagnostics(spec.diagnostics)
    program = lower(spec)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    groups: dict[str, dict] = {}
    for check in program.checks:
        for item in check.items:
            if isinstance(item, ExplainerComparison):
                groups[item.property] = {"item": item, "explainers": item.explainers, "removals": item.removals}
            elif isinstance(item, Faithfulness):
                g = groups.setdefault(item.property, {"item": item, "explainers": (), "removals": ()})
                if item.explainer not in g["explainers"]:
                    g["explainers"] += (item.explainer,)
                if item.removal not in g["removals"]:
                    g["removals"] += (item.removal,)
    if not groups:
        typer.echo("no faithfulness properties are checked in this spec")
        raise typer.Exit(0)
    for prop, g in groups.items():
        item = g["item"]
        comp = ExplainerComparison(prop, prop, item.network, tuple(g["explainers"]), item.data, tuple(g["removals"]),
                                   item.options, item.confidence, item.resamples, item.seed)
        table, higher = handler.compare(comp)
        md = f"### {prop}\n\n" + comparison_markdown(table, higher, item.options.metric) + "\n"
        (outdir / f"{prop}.md").write_text(md)
        typer.echo(md)
        curves = {}
        for r in g["removals"]:
            curves[r.label] = {}
            for e in g["explainers"]:
                res = table[r.label]["results"][e.name]
                if res.curve is None or res.fractions is None or res.curve.shape[1] != len(res.fractions):
                    # metrics without a deletion curve (srg, road, correlations): plot MoRF deletion
                    res = handler.measure(item.network, e, item.data, r, _with_metric(item.options, "deletion_auc"))
                curves[r.label][e.name] = res
        png = plot_curves(curves, outdir / f"{prop}_curves.png", f"{prop}: MoRF deletion ({item.options.metric})")
        typer.echo(f"wrote {png}")
        model = handler.load_model(item.network)
        x, y = handler.load_images(item.network, item.data, model, item.options.target)
        e0 = g["explainers"][0]
        attr = handler.attributions(item.network, e0, item.data, model, x, y, item.options.target)
        k = max(1, min(images, x.shape[0]))
        gran = metrics.Granularity(item.options.granularity, item.options.patch)
        rmap, nf = metrics.rank_map(attr[:k], tuple(x[:k].shape), gran, "morf")
        mask = rmap < int(round(fraction * nf))
        removals = {r.label: make_removal(r.kind, *r.args) for r in g["removals"]}
        png = plot_removals(x[:k], mask, removals, outdir / f"{prop}_removals.png",
                            f"top {fraction:.0%} of {e0.name} removed")
        typer.echo(f"wrote {png}")


def _with_metric(options, metric: str):
    import dataclasses

    return dataclasses.replace(options, metric=metric)


def register(app: typer.Typer) -> None:
    app.add_typer(xai_app, name="xai")
