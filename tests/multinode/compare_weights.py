"""Compares two exported state_dicts (brats_recipe export): the parameters must be
bitwise equal; buffers (BatchNorm running statistics) bitwise too, unless --buffers-rtol
allows rounding (a resume averages them once more). Exit 1 naming the first tensor that
differs and by how much."""
import argparse
import sys

import torch

p = argparse.ArgumentParser()
p.add_argument("a")
p.add_argument("b")
p.add_argument("--buffers-rtol", type=float, default=0.0)
args = p.parse_args()
a, b = torch.load(args.a, weights_only=True), torch.load(args.b, weights_only=True)
if set(a) != set(b):
    sys.exit(f"different keys: {sorted(set(a) ^ set(b))}")
buffer_names = ("running_mean", "running_var", "num_batches_tracked")
checked = 0
for name in sorted(a):
    x, y = a[name], b[name]
    if x.shape != y.shape:
        sys.exit(f"{name}: shape {tuple(x.shape)} vs {tuple(y.shape)}")
    if name.endswith(buffer_names) and args.buffers_rtol > 0:
        ok = torch.allclose(x.double(), y.double(), rtol=args.buffers_rtol, atol=args.buffers_rtol)
    else:
        ok = torch.equal(x, y)
    if not ok:
        diff = (x.double() - y.double()).abs().max().item()
        sys.exit(f"{name} differs: max |a - b| = {diff:.3e}")
    checked += 1
print(f"{checked} tensors equal ({'bitwise' if args.buffers_rtol == 0 else 'parameters bitwise, buffers to rtol %g' % args.buffers_rtol})")
