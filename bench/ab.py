#!/usr/bin/env python3
"""Interleaved A/B timing: each variant once per round, in turn, so a machine that runs in slow
and fast phases (as this shared one does) slows every variant of a round alike.

    bench/ab.py ROUNDS 'name=[VAR:value;VAR:value]|command args' ...

Prints each variant's median, 25th percentile and minimum wall time (ms), and the median over
rounds of its time divided by the last variant's time in the same round (put the reference,
e.g. `ss -tulpn`, last). The command is started with posix_spawn, its output discarded; the first
three rounds are warm-up. Run it under `chrt -f 50` as the other figures are.
"""
import os
import shlex
import statistics
import sys
import time


def main() -> None:
    rounds = int(sys.argv[1])
    variants = []
    for arg in sys.argv[2:]:
        name, rest = arg.split("=", 1)
        assigns, cmd = rest.split("|", 1) if "|" in rest else ("", rest)
        env = dict(os.environ)
        for kv in filter(None, assigns.split(";")):
            k, v = kv.split(":", 1)
            env[k] = v
        variants.append((name, shlex.split(cmd), env))
    times = {name: [] for name, _, _ in variants}
    quiet = [(os.POSIX_SPAWN_OPEN, fd, "/dev/null", os.O_WRONLY, 0) for fd in (1, 2)]
    for r in range(rounds + 3):
        for name, argv, env in variants:
            start = time.perf_counter()
            pid = os.posix_spawnp(argv[0], argv, env, file_actions=quiet)
            os.waitpid(pid, 0)
            if r >= 3:
                times[name].append((time.perf_counter() - start) * 1e3)
    ref = variants[-1][0]
    for name, _, _ in variants:
        t = sorted(times[name])
        ratio = statistics.median(a / b for a, b in zip(times[name], times[ref]))
        print(f"{name:10s} median {statistics.median(t):6.1f}  p25 {t[len(t) // 4]:6.1f}  "
              f"min {t[0]:6.1f}  ratio-to-{ref} {ratio:.3f}")


if __name__ == "__main__":
    main()
