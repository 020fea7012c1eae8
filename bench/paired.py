"""Paired timing of input pipelines on a shared machine (`python -m bench.bench_loader --interleave`).

A machine shared with other work drifts in speed by tens of percent from minute to minute, so pipelines timed one
after another compare different minutes. Here they take turns: in-process, one batch each in turn; through the
DataLoader, every pipeline's loader runs with persistent workers, consumed one batch each in turn, and each is
charged the CPU time of its own workers (Linux /proc) and of the consuming thread in its `next`. A ratio (ours /
timm, ours / legacy) is the ratio of CPU seconds spent on the same batches' worth of images in the same minutes
(the same images, but for timm's loaders, which shuffle: those see the same images per epoch), with a 95% BCa
bootstrap interval over blocks of BLOCK batches (scipy.stats.bootstrap, paired; Efron & Tibshirani 1993, ch. 14).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

BLOCK = 6  # batches per block: the unit over which the paired ratios' intervals are taken


def _ratio_pairs(names: list[str]) -> list[tuple[str, str]]:
    """(ours, baseline): each of this project's pipelines against each timm pipeline and against its legacy self."""
    timm_names = [n for n in names if n.startswith("timm")]
    pairs = []
    for n in names:
        if n.startswith("ours") and "legacy" not in n:
            pairs += [(n, t) for t in timm_names]
            legacy = "ours legacy, " + n.split(", ", 1)[1]
            if legacy in names:
                pairs.append((n, legacy))
    return pairs


def paired_ratios(names: list[str], cost: dict[str, list[float]]) -> dict:
    """Rate ratios ours / baseline from the CPU seconds each pipeline spent on the same blocks of batches (the same
    images, the same minutes): the ratio of the summed costs, with a 95% BCa bootstrap interval over the blocks
    (scipy.stats.bootstrap, paired). Blocks next to each other share a machine's slow spells, so the interval is
    approximate; it is None with fewer than 3 blocks."""
    from scipy import stats
    out = {}
    for a, b in _ratio_pairs(names):
        ca, cb = np.asarray(cost[a], dtype=float), np.asarray(cost[b], dtype=float)
        ratio = float(cb.sum() / ca.sum())  # rate a / rate b: as many images cost b this much more CPU
        lo = hi = None
        if len(ca) >= 3:
            res = stats.bootstrap((ca, cb), lambda x, y, axis: y.sum(axis) / x.sum(axis), paired=True,
                                  vectorized=True, n_resamples=2000, method="BCa", rng=np.random.default_rng(0))
            lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        out[f"{a} / {b}"] = {"ratio": ratio, "ci95": [lo, hi], "blocks": int(len(ca))}
    return out


def interleaved_in_process(steps: dict, batches: list[list[int]], passes: int, batch: int) -> dict:
    """Every pipeline one batch in turn (the first of the turn rotating), `passes` times over the batches: each
    pipeline's images/s over its own batches' wall time, images per CPU-second over their thread CPU time."""
    names = list(steps)
    for n in names:  # untimed: a pipeline's first batch pays one-off set-up (decoder tables, buffers)
        steps[n](batches[0])
    wall = {n: 0.0 for n in names}
    cpu = {n: [0.0] for n in names}  # per block
    k = 0
    for _ in range(passes):
        for b in batches:
            if k and k % BLOCK == 0:
                for n in names:
                    cpu[n].append(0.0)
            turn = names[k % len(names):] + names[:k % len(names)]
            k += 1
            for n in turn:
                t, c = time.perf_counter(), time.thread_time()
                steps[n](b)
                cpu[n][-1] += time.thread_time() - c
                wall[n] += time.perf_counter() - t
    images = k * batch
    pipes = {n: {"images_s": images / wall[n], "images_per_cpu_s": images / sum(cpu[n])} for n in names}
    for n, r in pipes.items():
        print(f"paired      {n:<46} {r['images_s']:8.1f} images/s ({r['images_per_cpu_s']:.1f} per CPU-second)",
              flush=True)
    ratios = paired_ratios(names, cpu)
    _print_ratios(ratios)
    return {"pipelines": pipes, "ratios": ratios, "passes": passes, "batches": k, "block_batches": BLOCK,
            "block_cpu_s": cpu}


def _print_ratios(ratios: dict) -> None:
    for pair, r in ratios.items():
        lo, hi = r["ci95"]
        ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None else ""
        print(f"ratio       {pair:<70} {r['ratio']:.2f}×{ci}", flush=True)


def _children() -> set[int]:
    """PIDs of this process's children (Linux /proc)."""
    me, out = os.getpid(), set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.add(int(d.name))
    return out


def _pids_cpu(pids) -> float:
    """User + system CPU seconds of these processes (Linux /proc; a process gone counts 0)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12])  # utime, stime: fields 14 and 15 of stat
    return total / tick


def _quiesce(pids, poll: float = 0.05, timeout: float = 60.0) -> bool:
    """Wait until these processes stop using CPU (two polls apart without a tick): loader workers that have filled
    their prefetch queues and wait. False if they were still busy after `timeout` seconds."""
    last, still, end = _pids_cpu(pids), 0, time.perf_counter() + timeout
    while still < 2 and time.perf_counter() < end:
        time.sleep(poll)
        now = _pids_cpu(pids)
        still, last = (still + 1 if now == last else 0), now
    return still >= 2


def interleaved_loaders(loaders: list, passes: int) -> dict:
    """Every loader (persistent workers) running side by side, consumed one batch each in turn for `passes` epochs:
    each pipeline's images per CPU-second of its own workers plus the consuming thread's time in its `next`.

    After each batch it takes, the consumer waits until that loader's workers are idle again (their prefetch queue
    refilled, or their epoch done), so one loader's workers run at a time, as on a machine that runs one loader,
    and not eight loaders' processes sharing one core's caches; the loaders still take turns within seconds, so a
    slow spell falls on all of them. Between the ends of two blocks (BLOCK turns) each loader's workers made
    exactly the batches consumed in the block, the same count for every loader, and the CPU they used is that
    block's cost. A loader that holds batches back beyond its workers' queue (timm's PrefetchLoader keeps one) is
    lined up first: the others take that many more batches before the blocks start, so every loader's workers have
    made the same number of batches at every block's end. A loader that shuffles (timm's) sees other images than
    ours in a block, the same images over an epoch."""
    names = [n for n, _ in loaders]
    pids = {n: set() for n in names}
    cost = {n: [] for n in names}  # CPU seconds per block
    main = {n: 0.0 for n in names}
    served = {n: 0 for n in names}
    mark = {}
    ahead = {n: int(type(ld).__name__ == "PrefetchLoader") for n, ld in loaders}  # batches held past the queue
    timeouts = 0

    def cpu_now(n):
        return _pids_cpu(pids[n]) + main[n]

    for _ in range(passes):
        its = {}
        for n, ld in loaders:
            before = _children()
            c = time.thread_time()
            its[n] = iter(ld)
            first = next(its[n])
            main[n] += time.thread_time() - c
            pids[n] |= _children() - before
            served[n] += len(first[1])
            for _ in range(max(ahead.values()) - ahead[n]):  # line up with the loaders that hold one back
                c = time.thread_time()
                x = next(its[n], None)  # None: an epoch that short is already over
                main[n] += time.thread_time() - c
                served[n] += len(x[1]) if x is not None else 0
        every = set().union(*pids.values())
        timeouts += not _quiesce(every)
        mark = {n: cpu_now(n) for n in names}
        live, turns = list(names), 0
        while live:
            for n in list(live):
                c = time.thread_time()
                x = next(its[n], None)
                main[n] += time.thread_time() - c
                if x is None:
                    live.remove(n)
                else:
                    served[n] += len(x[1])
                    # its workers refill their queue alone: no other loader's at once
                    timeouts += not _quiesce(pids[n], poll=0.02)
            turns += 1
            if turns % BLOCK == 0 or not live:
                timeouts += not _quiesce(every)
                now = {n: cpu_now(n) for n in names}
                for n in names:
                    cost[n].append(now[n] - mark[n])
                mark = now
        del its
    pipes = {}
    for n in names:
        total = cpu_now(n)
        pipes[n] = {"images_per_cpu_s": served[n] / total, "workers_pids": len(pids[n]), "images": served[n]}
        print(f"paired      {n:<46} {pipes[n]['images_per_cpu_s']:8.1f} images per CPU-second", flush=True)
    ratios = paired_ratios(names, cost)
    _print_ratios(ratios)
    if timeouts:
        print(f"warning: {timeouts} waits for idle workers timed out; those blocks' costs are blurred", flush=True)
    return {"pipelines": pipes, "ratios": ratios, "passes": passes, "block_batches": BLOCK, "block_cpu_s": cost,
            "quiesce_timeouts": timeouts}


