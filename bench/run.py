#!/usr/bin/env python3
"""One command, one run: plain diffusers (the baseline), this server, and a one-at-a-time server, on the
same machine in the same minutes, so that the ratios between them mean something.

  python bench/run.py --model random:sd2 --size 512 --steps 1             # the SD-Turbo target (GPU)
  python bench/run.py --model random:sdxl --size 1024 --steps 4 --batches 1,4 --concurrency 1,8
  python bench/run.py --model random:sd2 --size 512 --steps 1 --compile   # with torch.compile
  python bench/run.py --smoke                                              # CPU, random:tiny, seconds

1. Plain diffusers at each --batches size: ../shared/bench/diffusers_offline.py --arch sd2|sdxl (a
   subprocess; in --smoke mode bench/offline_tiny.py, which times the tiny architecture the same way).
2. This server (`imageapi serve`, a real process) driven by the async openai client at each
   --concurrency (n=1, b64_json, png): images/s, p50/p95 latency, batch sizes from /health.
3. ../shared/bench/one_at_a_time_server.py the same way. It hard-codes CUDA and sd2 at 512x512, 1 step:
   it is skipped, with the reason in the output, anywhere else.
Every figure is printed as a ratio to the baseline (plain diffusers at the largest batch measured), and
everything goes to --out as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drive import drive
from report import add_ratios, print_table
from servers import BackgroundServer, cuda_device_name

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCH = REPO.parent / "shared" / "bench"
API_KEY = "sk-bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random:sd2", help="what `imageapi serve --model` takes")
    parser.add_argument("--arch", choices=["sd2", "sdxl", "tiny"], help="plain-diffusers architecture; "
                        "default from --model (random:sdxl or a name with 'xl' -> sdxl; random:tiny -> tiny)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--guidance", type=float, default=0.0)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--batches", default="1,8,32", help="plain-diffusers batch sizes")
    parser.add_argument("--requests", type=int, default=0, help="requests per concurrency level; "
                        "default max(32, 4 x concurrency)")
    parser.add_argument("--reps", type=int, default=5, help="timed plain-diffusers calls per batch size")
    parser.add_argument("--max-batch-images", type=int, default=32)
    parser.add_argument("--max-batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--compile", action="store_true", help="serve with --compile")
    parser.add_argument("--server-arg", action="append", default=[], help="more `imageapi serve` flags")
    parser.add_argument("--shared-bench", type=Path, default=SHARED_BENCH)
    parser.add_argument("--skip", action="append", default=[], choices=["offline", "server", "one-at-a-time"])
    parser.add_argument("--out", type=Path, default=Path("bench-result.json"))
    parser.add_argument("--smoke", action="store_true", help="CPU smoke mode: random:tiny, 128x128, 1 step, "
                        "concurrency 1,4, batches 1,4, 4 requests per level")
    args = parser.parse_args(argv)
    if args.smoke:
        args.model, args.size, args.steps, args.concurrency, args.batches = "random:tiny", 128, 1, "1,4", "1,4"
        args.requests, args.reps, args.max_batch_images, args.max_batch_wait_ms = 4, 2, 4, 50.0
    if args.arch is None:
        source = args.model.lower()
        args.arch = "tiny" if source == "random:tiny" else "sdxl" if "xl" in source else "sd2"
    return args


def run_offline(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.arch == "tiny":
        command = [sys.executable, str(REPO / "bench" / "offline_tiny.py")]
    else:
        command = [sys.executable, str(args.shared_bench / "diffusers_offline.py"), "--arch", args.arch]
    command += ["--size", str(args.size), "--steps", str(args.steps), "--guidance", str(args.guidance),
                "--batches", args.batches, "--reps", str(args.reps)]
    print("plain diffusers:", " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"plain diffusers failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def measure_server(server: BackgroundServer, args: argparse.Namespace, model: str | None,
                   extra: dict[str, Any] | None) -> list[dict[str, Any]]:
    results = []
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        requests = args.requests or max(32, 4 * concurrency)
        load = dict(model=model, size=args.size, steps=args.steps, guidance=args.guidance, extra=extra)
        asyncio.run(drive(server.base_url, API_KEY, concurrency=concurrency, requests=concurrency, **load))  # warm
        before = server.batch_sizes()
        result = asyncio.run(drive(server.base_url, API_KEY, concurrency=concurrency, requests=requests, **load))
        row = result.as_dict()
        row["batch_sizes"] = histogram_difference(server.batch_sizes(), before)
        print(f"  concurrency {concurrency}: {row}", flush=True)
        results.append(row)
    return results


def histogram_difference(after: dict[str, int] | None, before: dict[str, int] | None) -> dict[str, int] | None:
    if after is None or before is None:
        return None
    return {size: count - before.get(size, 0) for size, count in after.items() if count - before.get(size, 0)}


def our_server(args: argparse.Namespace, data_dir: Path) -> BackgroundServer:
    flags = ["-m", "imageapi", "serve", "--model", args.model, "--api-key", API_KEY, "--data-dir", str(data_dir),
             "--max-batch-images", str(args.max_batch_images), "--max-batch-wait-ms", str(args.max_batch_wait_ms),
             "--log-level", "warning"]
    if args.compile:
        flags += ["--compile", "--compile-size", f"{args.size}x{args.size}"]
    return BackgroundServer("imageapi", flags + args.server_arg, data_dir / "imageapi.log")


def one_at_a_time_skip_reason(args: argparse.Namespace) -> str | None:
    if cuda_device_name() is None:
        return "skipped: one_at_a_time_server.py hard-codes CUDA and this machine has none"
    if (args.arch, args.size, args.steps) != ("sd2", 512, 1):
        return "skipped: one_at_a_time_server.py serves only sd2 at 512x512, 1 step"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.UTC)
    report: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"), "command": " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "device": cuda_device_name() or f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "model": args.model, "arch": args.arch, "size": args.size, "steps": args.steps, "guidance": args.guidance,
        "max_batch_images": args.max_batch_images, "max_batch_wait_ms": args.max_batch_wait_ms,
        "compile": args.compile, "smoke": args.smoke, "notes": []}
    extra = {"num_inference_steps": args.steps, "guidance_scale": args.guidance, "output_format": "png"}
    with tempfile.TemporaryDirectory(prefix="imageapi-bench-") as work:
        if "offline" not in args.skip:
            report["plain_diffusers"] = run_offline(args)
        if "server" not in args.skip:
            print(f"imageapi serve --model {args.model}", flush=True)
            with our_server(args, Path(work)) as server:
                report["server"] = measure_server(server, args, args.model, extra)
        reason = one_at_a_time_skip_reason(args)
        if "one-at-a-time" in args.skip or reason:
            report["notes"].append(f"one-at-a-time server {reason or 'skipped: --skip'}")
        else:
            command = [str(args.shared_bench / "one_at_a_time_server.py")]
            with BackgroundServer("one-at-a-time", command, Path(work) / "one.log", health_path="/health") as server:
                report["one_at_a_time"] = measure_server(server, args, None, None)
    add_ratios(report)
    print_table(report)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written: {args.out}")
    failed = sum(row["errors"] for key in ("server", "one_at_a_time") for row in report.get(key, []))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
