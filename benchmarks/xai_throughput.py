"""Metric throughput: hdsl.xai vs Quantus 0.6.0 on the same inputs and model, CPU, in one run.

Model: the shipped CIFAR-10 net (models/cifar10_small.onnx, imported by hdsl and
wrapped channel-first), so both tools call exactly the same torch forward; or
(``--model linear``) a linear classifier, where the tools' own overhead dominates.
Inputs: the first N images of data/cifar10_test.npz, attributions = a fixed
random per-channel map (distinct values, so both tools order features the same).
For every metric both results are compared (max |difference|) before the
timing is reported, so the speed-up is for the same numbers.

    python benchmarks/xai_throughput.py [--n 64] [--threads 2]
    python benchmarks/xai_throughput.py --n 500 --device cuda   # hdsl on the GPU, Quantus on the CPU

Needs Quantus (``pip install --no-deps -r tests/requirements-quantus.txt``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--model", choices=("cifar10_small", "linear"), default="cifar10_small",
                    help="the shipped CIFAR-10 conv net, or a linear classifier (a light model: the tools' "
                         "own overhead dominates)")
    ap.add_argument("--device", default="cpu",
                    help="where hdsl's side runs (model, images, masks); Quantus always runs on the CPU, so with "
                         "cuda the speed-up column compares hdsl on the GPU with Quantus on the CPU")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import quantus

    from hdsl.nn import load_onnx
    from hdsl.xai import metrics as M
    from hdsl.xai import removal as R
    from hdsl.xai.model import ChannelFirst, images_to_nchw

    g = load_onnx(ROOT / "models/cifar10_small.onnx")
    net = ChannelFirst(g, g.input_shape).eval()
    if args.model == "linear":
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval()
    d = np.load(ROOT / "data/cifar10_test.npz")
    x = images_to_nchw(d["x"][: args.n], g.input_shape)
    with torch.no_grad():
        y = net(x).argmax(1)
    a = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    xn, yn, an = x.numpy(), y.numpy(), a.numpy()
    hnet = net
    if args.device != "cpu":  # hdsl's side on the device: a copy of the same weights
        import copy

        hnet = ChannelFirst(g.to(args.device), g.input_shape).eval() if args.model == "cifar10_small" else \
            copy.deepcopy(net).to(args.device)
        x, y, a = x.to(args.device), y.to(args.device), a.to(args.device)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
    black = R.Constant("black")
    ch = M.Granularity("channel")
    nf = int(np.prod(x.shape[1:]))

    def quantus_call(metric, **kw):
        return np.array(metric(model=net, x_batch=xn, y_batch=yn, a_batch=an, device="cpu", batch_size=64, **kw))

    cases = []
    fis = 64  # Quantus asserts it divides H*W; 3072 / 64 = 48 steps
    cases.append((
        f"PixelFlipping ({nf // fis} steps of {fis} channel elements)",
        lambda: quantus_call(quantus.PixelFlipping(features_in_step=fis, abs=False, normalise=False,
                                                   disable_warnings=True), softmax=True),
        lambda: M.pixel_flipping(hnet, x, y, a, black, features_in_step=fis, granularity=ch).curve,
    ))
    cases.append((
        "RegionPerturbation (patch 4, 64 regions)",
        lambda: quantus_call(quantus.RegionPerturbation(patch_size=4, regions_evaluation=64, abs=False,
                                                        normalise=False, disable_warnings=True), softmax=True),
        lambda: M.region_perturbation(hnet, x, y, a, black, patch=4, regions=64).curve,
    ))
    cases.append((
        f"FaithfulnessEstimate ({nf // fis} groups of {fis})",
        lambda: quantus_call(quantus.FaithfulnessEstimate(features_in_step=fis, abs=False, normalise=False,
                                                          disable_warnings=True), softmax=True),
        lambda: M.faithfulness_estimate(hnet, x, y, a, black, features_in_step=fis, granularity=ch).per_image,
    ))

    drawn: list[np.ndarray] = []
    choice = np.random.choice

    def recording_choice(*a_, **k_):
        out = choice(*a_, **k_)
        drawn.append(np.asarray(out))
        return out

    def q_corr():
        drawn.clear()
        np.random.choice = recording_choice
        try:
            return quantus_call(quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=224, abs=False,
                                                                normalise=False, return_aggregate=False,
                                                                disable_warnings=True), softmax=False)
        finally:
            np.random.choice = choice

    def h_corr():
        subsets = torch.from_numpy(np.stack(drawn).reshape(100, x.shape[0], 224).transpose(1, 0, 2).copy())
        return M.faithfulness_correlation(hnet, x, y, a, black, granularity=ch, score="logit",
                                          subsets=subsets).per_image

    cases.append(("FaithfulnessCorrelation (100 subsets of 224)", q_corr, h_corr))

    where = args.device if args.device == "cpu" else f"{args.device} ({torch.cuda.get_device_name()})"
    print(f"model {args.model}, N = {x.shape[0]} CIFAR-10 images, torch threads = {torch.get_num_threads()}, "
          f"quantus {quantus.__version__} on the CPU, hdsl on {where}, torch {torch.__version__}")
    print("| metric | Quantus s | hdsl s | speed-up | images/s (hdsl) | max abs diff |")
    print("|---|---|---|---|---|---|")
    total_q = total_h = 0.0
    for name, q, h in cases:
        tq = th = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            qv = q()
            tq = min(tq, time.perf_counter() - t0)
            sync()
            t0 = time.perf_counter()
            hv = h()
            sync()
            th = min(th, time.perf_counter() - t0)
        diff = float(np.nanmax(np.abs(np.asarray(qv, dtype=np.float64) - np.asarray(hv, dtype=np.float64))))
        total_q += tq
        total_h += th
        print(f"| {name} | {tq:.2f} | {th:.3f} | {tq / th:.1f}x | {x.shape[0] / th:.0f} | {diff:.1e} |")
    print(f"| **all four** | {total_q:.2f} | {total_h:.3f} | **{total_q / total_h:.1f}x** | | |")


if __name__ == "__main__":
    main()
