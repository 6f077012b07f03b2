"""Benchmark PyTorch CPU float32 matmul, as a baseline for tokenclip's kernels.

For each shape (M, K, N), times torch.matmul(a, b) with a [M, K] and b [K, N]:
2 warm-up runs, then the median of --reps timed runs, reported in ms and
GFLOP/s (2*M*K*N flops per matmul).

Run from the repository root:

    python3 tools/bench_torch_ops.py [--threads N] [--reps R]
"""

import argparse
import statistics
import time

import torch

SHAPES = [
    (1024, 1024, 1024),
    (1370, 1024, 4096),  # ViT-L/14 MLP up-projection at 518 px (37*37 patches + CLS)
    (1370, 4096, 1024),  # ... and its down-projection
    (197, 768, 3072),  # ViT-B/16 MLP at 224 px
]
WARMUP = 2


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def bench(m, k, n, reps):
    a = torch.randn(m, k)
    b = torch.randn(k, n)
    for _ in range(WARMUP):
        torch.matmul(a, b)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--reps", type=int, default=7, help="timed runs per shape (default: 7)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpu {cpu_model()}")
    for m, k, n in SHAPES:
        t = bench(m, k, n, args.reps)
        gflops = 2 * m * k * n / t / 1e9
        print(f"torch matmul {m}x{k}x{n}: {t * 1e3:.2f} ms, {gflops:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
