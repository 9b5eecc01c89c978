"""PyTorch's side of tests/e2e/interop_test.sh, with the U-Net of
benchmarks/pytorch_reference.py.

    interop_check.py make  STATE IO WIDTHS   a seeded reference U-Net (BatchNorm weights and
        running statistics perturbed) saved with torch.save(dict(model.state_dict())) (and
        with torch.save(model.state_dict()), an OrderedDict, to STATE.ordered); IO gets a
        dict of "input" and its eval-mode "logits"
    interop_check.py check STATE IO WIDTHS   loads Strata's export with
        load_state_dict(strict=True) and compares its logits on IO's "input" with IO's
        (Strata's): exits 1 above 1e-5
    interop_check.py keys  STATE WIDTHS      the export is a plain dict of tensors that
        loads strictly
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
from pytorch_reference import UNet2d  # noqa: E402


def reference(widths):
    return UNet2d(in_channels=4, classes=4, widths=tuple(int(w) for w in widths.split(",")))


def load_strict(widths, path):
    sd = torch.load(path, weights_only=True)
    assert isinstance(sd, dict) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()), type(sd)
    model = reference(widths)
    model.load_state_dict(sd, strict=True)  # raises on a missing, unexpected or misshapen key
    return model.eval(), sd


def main():
    mode = sys.argv[1]
    torch.manual_seed(3)
    if mode == "make":
        state, io, widths = sys.argv[2:5]
        model = reference(widths)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.normal_(1, 0.2)
                    m.bias.normal_(0, 0.2)
                    m.running_mean.normal_(0, 0.3)
                    m.running_var.uniform_(0.5, 2.0)
                    m.num_batches_tracked.fill_(9)
        torch.save(dict(model.state_dict()), state)
        torch.save(model.state_dict(), state + ".ordered")  # a collections.OrderedDict, as usual
        x = torch.randn(2, 4, 32, 32)
        with torch.no_grad():
            torch.save({"input": x, "logits": model.eval()(x)}, io)
        print(f"make: {state}: {len(model.state_dict())} tensors")
    elif mode == "check":
        state, io, widths = sys.argv[2:5]
        model, sd = load_strict(widths, state)
        d = torch.load(io, weights_only=False)  # the test tool's own file (torch::pickle_save, type-tagged)
        with torch.no_grad():
            diff = (model(d["input"]) - d["logits"]).abs().max().item()
        print(f"check: {state}: {len(sd)} tensors load strictly; max |logits - Strata's| = {diff:.3g}")
        sys.exit(0 if diff <= 1e-5 else 1)
    elif mode == "keys":
        state, widths = sys.argv[2:4]
        _, sd = load_strict(widths, state)
        print(f"keys: {state}: {len(sd)} tensors load strictly, e.g. {sorted(sd)[:3]}")
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
