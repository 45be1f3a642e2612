#!/usr/bin/env python3
"""Plain diffusers on the random `tiny` architecture, timed exactly as ../shared/bench/diffusers_offline.py
times sd2 and sdxl (same prompt, one warm-up, median of --reps calls), printing the same JSON lines.
The shared script has no tiny architecture; bench/run.py uses this one for its CPU smoke mode only.

  python bench/offline_tiny.py --size 128 --steps 1 --batches 1,4 --reps 3
"""

from __future__ import annotations

import argparse
import io
import json
import time

import torch

from imageapi.backends.random_models import build_tiny


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--guidance", type=float, default=0.0)
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = build_tiny()
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        for batch in [int(b) for b in args.batches.split(",")]:
            def call(batch: int = batch) -> list:
                return pipe(["a photo of a cat"] * batch, height=args.size, width=args.size,
                            num_inference_steps=args.steps, guidance_scale=args.guidance).images
            call()
            times = []
            for _ in range(args.reps):
                started = time.perf_counter()
                images = call()
                times.append(time.perf_counter() - started)
            seconds = sorted(times)[len(times) // 2]
            buffer = io.BytesIO()
            started = time.perf_counter()
            images[0].save(buffer, "PNG")
            png_s = time.perf_counter() - started
            print(json.dumps({"arch": "tiny", "device": "cpu", "size": args.size, "steps": args.steps,
                              "guidance": args.guidance, "batch": batch, "s_per_call": round(seconds, 4),
                              "images_per_s": round(batch / seconds, 2), "png_encode_s": round(png_s, 4)}),
                  flush=True)


if __name__ == "__main__":
    main()
