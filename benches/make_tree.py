#!/usr/bin/env python3
"""Builds the benchmark trees of benches/compare.sh, deterministically (seeded).

make_tree.py DEST FILES MEGABYTES
  FILES files, 20 per folder (folders nested 100 wide), sizes log-normal (sigma 1.5)
  scaled so the total is MEGABYTES MB, text content (lines of words), a few hidden files
  and a symlink, so a snapshot sees what a real repository holds.
make_tree.py --big DEST MEGABYTES      one text file of MEGABYTES MB (DEST/big.txt)
"""
import math
import os
import random
import sys

WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi"


def text_block(size):
    rng = random.Random(7)
    words = WORDS.split()
    out = bytearray()
    while len(out) < size:
        line = b" ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        out += line + b"\n"
    return bytes(out[:size])


def tree(dest, files, megabytes):
    rng = random.Random(42)
    sigma = 1.5
    mean = megabytes * 1e6 / files
    mu = math.log(mean) - sigma * sigma / 2
    sizes = [int(rng.lognormvariate(mu, sigma)) for _ in range(files)]
    scale = megabytes * 1e6 / max(1, sum(sizes))
    sizes = [max(0, int(s * scale)) for s in sizes]
    block = text_block(4 * 1024 * 1024)
    cap = len(block) // 2
    for i, size in enumerate(sizes):
        folder = i // 20
        sub = os.path.join(dest, f"d{folder // 100:03d}", f"s{folder % 100:02d}")
        if i % 20 == 0:
            os.makedirs(sub, exist_ok=True)
        name = f".hidden{i}" if i % 1000 == 1 else f"f{i}.txt"
        start = (i * 7919) % cap
        with open(os.path.join(sub, name), "wb") as f:
            left = size
            while left > 0:
                n = min(left, cap)
                f.write(block[start : start + n])
                left -= n
    os.symlink("d000/s00/f0.txt", os.path.join(dest, "link-to-first"))


def big(dest, megabytes):
    os.makedirs(dest, exist_ok=True)
    block = text_block(1024 * 1024)
    with open(os.path.join(dest, "big.txt"), "wb") as f:
        for _ in range(megabytes):
            f.write(block)


if __name__ == "__main__":
    if sys.argv[1] == "--big":
        big(sys.argv[2], int(sys.argv[3]))
    else:
        tree(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
