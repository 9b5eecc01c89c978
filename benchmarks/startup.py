#!/usr/bin/env python3
"""How long brats_recipe takes to start, cold and warm, and its peak RSS.

Cold: every shared library the binary and libtorch_cuda.so would map (and the binary
itself) is first dropped from the page cache (posix_fadvise DONTNEED, which needs no
privilege), as on a node that has not run it yet; warm: right after, with the files
cached. Commands:
  version      brats_recipe --version
  help         brats_recipe --help
  config       brats_recipe config --reference
  inspect      brats_recipe inspect <a small packed file>
  train        brats_recipe train (recipes/cpu_smoke.yaml, one rank, CPU) until its first
               step is done (the second line of its sample log), then stopped
  evaluate     brats_recipe evaluate of a checkpoint on that file's val split (one rank)
Interleaved: for each round, each command cold then warm, for each binary in turn.
Prints a table of medians and writes JSON (--json).

  benchmarks/startup.py [--binary build/bin/brats_recipe] [--baseline OLD_BINARY] [--runs 3] [--json F]
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def libraries(binary):
    """Files the binary maps at start-up, and those libtorch_cuda.so would bring."""
    files = {os.path.realpath(binary)}
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    for path in re.findall(r"=> (/\S+)", out):
        files.add(os.path.realpath(path))
    torch_lib = next((os.path.dirname(f) for f in files if f.endswith("libtorch_cpu.so")), None)
    cuda = os.path.join(torch_lib, "libtorch_cuda.so") if torch_lib else None
    if cuda and os.path.exists(cuda):
        files.add(os.path.realpath(cuda))
        out = subprocess.run(["ldd", cuda], capture_output=True, text=True).stdout
        files.update(os.path.realpath(p) for p in re.findall(r"=> (/\S+)", out))
    return sorted(files)


def evict(files):
    for f in files:
        try:
            fd = os.open(f, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(cmd, env, until=None):
    """(seconds, peak RSS MiB) of cmd, via /usr/bin/time; with `until`: the time until
    until() is true, and the peak up to then (the program is killed there)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        start = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", tf.name] + cmd, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = peak = None
        if until:
            while p.poll() is None:
                if until():
                    seconds = time.perf_counter() - start
                    # The program is /usr/bin/time's child: its peak so far, then stop it.
                    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                        child = int(f.read().split()[0])
                    peak = peak_rss_mib(child)
                    os.kill(child, signal.SIGKILL)
                    break
                time.sleep(0.005)
        _, err = p.communicate()
        if until is None and p.returncode != 0:
            raise SystemExit(f"startup: {' '.join(cmd)} failed ({p.returncode}):\n{err[-2000:]}")
        if until is not None and seconds is None:
            raise SystemExit(f"startup: {' '.join(cmd)} ended before its first step:\n{err[-2000:]}")
        if seconds is None:
            seconds = time.perf_counter() - start
            rss = tf.read().strip().splitlines()
            peak = round(int(rss[-1]) / 1024, 1)
        return seconds, peak


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return round(int(next(line for line in f if line.startswith("VmHWM:")).split()[1]) / 1024, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/bin/brats_recipe"))
    ap.add_argument("--baseline", help="another brats_recipe to measure alongside (interleaved)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--commands", default="version,help,config,inspect,train,evaluate")
    ap.add_argument("--json")
    a = ap.parse_args()
    binaries = {"this": a.binary}
    if a.baseline:
        binaries["baseline"] = a.baseline
    env = dict(os.environ, STRATA_PROGRESS="off", OMP_NUM_THREADS="2")
    tmp = tempfile.mkdtemp(prefix="strata-startup-")
    b = a.binary
    data, run = os.path.join(tmp, "b64.h5"), os.path.join(tmp, "run")
    subprocess.run([b, "synth", "--out", os.path.join(tmp, "cases"), "--cases", "4", "--shape", "64,64,24"], env=env,
                   check=True, capture_output=True)
    subprocess.run([b, "pack", "--input", os.path.join(tmp, "cases"), "--out", data, "--size", "64"], env=env,
                   check=True, capture_output=True)
    recipe = os.path.join(ROOT, "recipes/cpu_smoke.yaml")
    base = ["--config", recipe, "--set", f"data.path={data}", "--set", "run.device=cpu", "--set", "data.workers=1"]
    subprocess.run([b, "train"] + base + ["--set", f"run.dir={run}", "--set", "train.epochs=1"], env=env, check=True,
                   capture_output=True)
    checkpoint = os.path.join(run, "last.pt")
    commands = dict(version=["--version"], help=["--help"], config=["config", "--reference"], inspect=["inspect", data],
                    evaluate=["evaluate"] + base + ["--checkpoint", checkpoint, "--set", "eval.hd95=false"])
    results = {name: {c: dict(cold=[], warm=[], cold_rss=[], warm_rss=[]) for c in a.commands.split(",")}
               for name in binaries}
    for k in range(a.runs):
        for name, binary in binaries.items():
            files = libraries(binary)
            for c in a.commands.split(","):
                for state in ("cold", "warm"):
                    if state == "cold":
                        evict(files)
                    if c == "train":
                        train_dir = os.path.join(tmp, f"train-{name}-{k}-{state}")
                        samples = os.path.join(train_dir, "samples", "rank-0.txt")

                        def first_step_done(path=samples):
                            try:
                                with open(path) as f:
                                    return sum(1 for _ in f) >= 2
                            except OSError:
                                return False

                        cmd = [binary, "train"] + base + ["--set", f"run.dir={train_dir}", "--set", "run.sample_log=true",
                                                          "--set", "train.epochs=5"]
                        s, rss = timed(cmd, env, until=first_step_done)
                    else:
                        s, rss = timed([binary] + commands[c], env)
                    results[name][c][state].append(round(s, 3))
                    results[name][c][state + "_rss"].append(rss)
                    print(f"startup: round {k + 1}, {name}, {c} {state}: {s:.2f} s, {rss} MiB", file=sys.stderr)
    print("| command | " + " | ".join(f"{n} cold s | {n} warm s | {n} peak RSS MiB" for n in binaries) + " |")
    print("| :--- |" + " ---: | ---: | ---: |" * len(binaries))
    for c in a.commands.split(","):
        cells = []
        for name in binaries:
            r = results[name][c]
            cells += [f"{statistics.median(r['cold']):.2f}", f"{statistics.median(r['warm']):.2f}",
                      f"{statistics.median(r['warm_rss']):.0f}"]
        print(f"| {c} | " + " | ".join(cells) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(binaries=binaries, runs=a.runs, results=results), f, indent=1)
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
