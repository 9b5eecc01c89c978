#!/usr/bin/env python3
"""Compares two golden files (torch.save'd dicts, as make_unet_golden.py writes them)
within tolerances that hold across CPUs, and prints the largest difference per entry.

Two machines do not make the same bits: PyTorch picks its float kernels (and its normal
sampler) by CPU ISA, so a file regenerated on an AVX-512 machine and on a plain x86-64
one differ in the last bits of the weights (one float32 ulp), and those differences
carry through the float64 reference pass: seen between ATEN_CPU_CAPABILITY=avx512 and
=default, 4e-7 of the largest magnitude in `input`, 8e-8 in `grad_norms`, 4e-9 in
`loss`. The bound below, 1e-5 of each entry's largest magnitude, leaves 25x margin over
that and is still far below what a real change makes (another init, eps, momentum or
loss weight moves entries by 1e-3 or more). Keys, dtypes, shapes, integer tensors
(the target) and the name lists must be equal exactly.

Usage: compare_golden.py REGENERATED COMMITTED   (exit 1 on any difference beyond tolerance)
"""
import sys

import torch

RTOL = 1e-5  # of the largest magnitude of the committed entry


def compare(got, want):
    errors = []
    if sorted(got) != sorted(want):
        errors.append(f"keys differ: only regenerated {sorted(set(got) - set(want))}, "
                      f"only committed {sorted(set(want) - set(got))}")
    worst = 0.0
    for key in sorted(set(got) & set(want)):
        a, b = got[key], want[key]
        if not isinstance(b, torch.Tensor):
            if a != b:
                errors.append(f"{key}: {a!r} != {b!r}")
            continue
        if not isinstance(a, torch.Tensor) or a.dtype != b.dtype or a.shape != b.shape:
            errors.append(f"{key}: {getattr(a, 'dtype', type(a))} {tuple(getattr(a, 'shape', ()))} "
                          f"!= {b.dtype} {tuple(b.shape)}")
            continue
        if not b.is_floating_point():
            if not torch.equal(a, b):
                errors.append(f"{key}: integer values differ")
            continue
        scale = b.double().abs().max().item()
        diff = (a.double() - b.double()).abs().max().item()
        rel = diff / scale if scale > 0 else diff
        worst = max(worst, rel)
        if not rel <= RTOL:  # NaN fails too
            errors.append(f"{key}: max abs diff {diff:.3e}, {rel:.3e} of its largest magnitude {scale:.3e} "
                          f"(tolerance {RTOL:.0e})")
    return errors, worst


def main(regenerated, committed):
    errors, worst = compare(torch.load(regenerated), torch.load(committed))
    for e in errors:
        print("differs:", e)
    print(f"largest relative difference {worst:.3e} (tolerance {RTOL:.0e}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}); {'FAILED' if errors else 'OK'}")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
