"""Served-captioning throughput against a server of fixed latency: achieved / ideal requests per second.

With concurrency C and a server that answers every request after L seconds, the ideal rate is C / L.
Each request carries real frames of the bundled sample, resized and JPEG-encoded in the client's
preparation threads, as the caption stage does, so the ratio shows whether preparation keeps the
server busy. Goal: ratio >= 0.9.

    .venv/bin/python bench/caption_throughput.py [--requests 400 --concurrency 16 --latency 0.25]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import time
from multiprocessing.connection import Connection

from annotator import paths, video
from annotator.models.protocols import CaptionRequest
from annotator.models.vlm_openai import OpenAIChatClient
from annotator.testing.fake_server import FakeServer


def serve(latency: float, pipe: Connection) -> None:
    """The server runs in its own process, as vLLM would: it must not share this process's GIL."""
    server = FakeServer(latency_s=latency)
    pipe.send(server.url)
    pipe.recv()  # until the benchmark is done
    pipe.send(server.max_in_flight)
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="a multiple of concurrency: full rounds")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.25, help="server seconds per request")
    parser.add_argument("--frames", type=int, default=4, help="frames per request")
    args = parser.parse_args()
    frames = video.read_frames(paths.SAMPLES_DIR / "bigbuckbunny.mp4", list(range(0, 120, 120 // args.frames)))
    ours, theirs = mp.Pipe()
    process = mp.get_context("spawn").Process(target=serve, args=(args.latency, theirs), daemon=True)
    process.start()
    url = ours.recv()
    try:
        client = OpenAIChatClient(url, "bench", max_concurrency=args.concurrency, image_max_side=448)
        jobs = [lambda i=i: client.messages(CaptionRequest(frames[: args.frames], f"describe {i}"))
                for i in range(args.requests)]
        started = time.perf_counter()
        replies = client.run(jobs)
        wall = time.perf_counter() - started
    finally:
        ours.send("done")
        max_in_flight = ours.recv()
        process.join(5)
    failed = sum(r.error is not None for r in replies)
    achieved = (args.requests - failed) / wall
    ideal = args.concurrency / args.latency
    print(f"requests={args.requests} concurrency={args.concurrency} latency={args.latency}s "
          f"max_in_flight={max_in_flight} failed={failed}")
    ceiling = args.requests / (math.ceil(args.requests / args.concurrency) * args.latency) / ideal
    print(f"achieved {achieved:.1f} req/s, ideal {ideal:.1f} req/s, ratio {achieved / ideal:.3f} (goal >= 0.9; "
          f"{ceiling:.3f} is the most {args.requests} requests can reach)")


if __name__ == "__main__":
    main()
