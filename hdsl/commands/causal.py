"""``hdsl causal ...``: train the example tasks, learn DAS rotations, measure IIA outside a spec."""

from __future__ import annotations

from typing import Optional

import typer

from hdsl.commands import output_file
from hdsl.constants import SEED_MAX

causal_app = typer.Typer(help="Causal alignment: example tasks, DAS rotations, interchange interventions.",
                         no_args_is_help=True)


@causal_app.command("train")
def train_cmd(
    task: str = typer.Argument(..., help="heq (hierarchical equality) or bool ((a and b) or (c and d))"),
    out: str = typer.Argument(..., callback=output_file, help="the ONNX file to write"),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="training seed (deterministic on CPU)"),
    rotate: Optional[str] = typer.Option(None, callback=output_file,
                                         help="also write the net with a random rotation after node h (node hr) to "
                                              "this ONNX file, and its un-rotation as .npy"),
) -> None:
    """Train an example task's modular network in seconds on CPU and export it to ONNX."""
    import time
    from pathlib import Path

    import numpy as np

    from hdsl.causal import tasks
    from hdsl.diagnostics import HdslError

    if task not in tasks.TASKS:
        raise HdslError.single("C601", f"unknown task {task!r}", hint="tasks: " + ", ".join(tasks.TASKS))
    spec = tasks.TASKS[task]()
    t0 = time.perf_counter()
    net = tasks.train(spec, seed=seed)
    acc = tasks.task_accuracy(net, spec)
    tasks.to_onnx(net, out)
    typer.echo(f"{task}: trained in {time.perf_counter() - t0:.2f} s, accuracy on all "
               f"{spec.model.input_count} inputs {acc:.4f}; wrote {out}")
    if rotate:
        rnet, q = tasks.rotate_after(net, "h", seed=seed + 1)
        tasks.to_onnx(rnet, rotate)
        rot_path = Path(rotate).with_suffix(".npy")
        np.save(rot_path, q.T.numpy())
        typer.echo(f"wrote {rotate} (node hr = Q h) and {rot_path} (rows: Q^T, the rotation that undoes it)")


@causal_app.command("das")
def das_cmd(
    net_path: str = typer.Argument(..., help="ONNX network of an example task"),
    task: str = typer.Option("heq", help="the task whose causal model to align"),
    variable: str = typer.Option("WX", help="the variable to align"),
    node: str = typer.Option("h", help="the node whose rotated coordinates 0..k-1 will carry it"),
    k: int = typer.Option(8, min=1, help="number of rotated coordinates"),
    steps: int = typer.Option(1000, min=1, help="Adam steps"),
    seed: int = typer.Option(0, min=0, max=SEED_MAX),
    out: Optional[str] = typer.Option(None, callback=output_file, help="write the learned rotation (.npy) here"),
) -> None:
    """Learn a rotation (DAS) for one variable and report its IIA on held-out pairs."""
    from hdsl.causal import das, tasks
    from hdsl.diagnostics import HdslError
    from hdsl.nn import load_onnx

    if task not in tasks.TASKS:
        raise HdslError.single("C601", f"unknown task {task!r}", hint="tasks: " + ", ".join(tasks.TASKS))
    spec = tasks.TASKS[task]()
    res = das.learn_rotation(load_onnx(net_path), spec.model, variable, node, k, steps=steps, seed=seed)
    typer.echo(res.summary())
    if out:
        das.save_rotation(res.rotation, out)
        typer.echo(f"wrote {out}; use it as: {variable} -> layer \"{node}@{out}\"[0:{k}]")


def register(app: typer.Typer) -> None:
    app.add_typer(causal_app, name="causal")
