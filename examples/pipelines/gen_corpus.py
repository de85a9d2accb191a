"""Writes a large corpus for the word-count example: the bundled chapter
repeated with shuffled lines. Usage: python3 gen_corpus.py MEGABYTES > big.txt"""
import os
import random
import sys

here = os.path.dirname(os.path.abspath(__file__))
lines = [l for l in open(os.path.join(here, "data", "corpus.txt")) if l.strip()]
target = int(sys.argv[1] if len(sys.argv) > 1 else 10) * 1_000_000
rng = random.Random(42)
out, written = sys.stdout, 0
while written < target:
    line = rng.choice(lines)
    out.write(line)
    written += len(line)
