"""Reads a Strata run's TensorBoard events with the tensorboard package and checks them
against the run's metrics.jsonl (tests/e2e/tensorboard_test.sh).

    tensorboard_check.py RUN_DIR --files N [--images-at-epochs 1,3]

Checksums: every record goes through tensorboard's record reader, which raises
DataLossError on a bad length or data CRC32C. Then its EventAccumulator (what TensorBoard
shows) must hold, at each finished epoch's step, the epoch's metrics.jsonl values (as
float32), one step/loss per step 1..last, and the overlay images at the given epochs.
"""
import argparse
import glob
import io
import json
import math
import os
import sys

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New


def records(path):
    reader = PyRecordReader_New(path)
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return
        yield event_pb2.Event.FromString(reader.record())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--files", type=int, required=True)
    ap.add_argument("--images-at-epochs", default="")
    a = ap.parse_args()
    tb = os.path.join(a.run, "tb")
    files = sorted(glob.glob(os.path.join(tb, "events.out.tfevents.*")))
    assert len(files) == a.files, f"{len(files)} event files, expected {a.files}: {files}"

    # 1. Raw records, in TensorBoard's file order: checksums, versions, monotonic steps.
    steps = []
    for f in files:
        events = list(records(f))
        assert events and events[0].file_version == "brain.Event:2", f"{f}: no version record first"
        for e in events:
            for v in e.summary.value:
                if v.tag == "step/loss":
                    steps.append(e.step)
    assert steps == sorted(set(steps)), f"step/loss steps not strictly increasing over the files: {steps}"

    # 2. What TensorBoard shows.
    acc = EventAccumulator(tb, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    scalars = {t: {e.step: e.value for e in acc.Scalars(t)} for t in acc.Tags()["scalars"]}
    for t, seq in ((t, acc.Scalars(t)) for t in acc.Tags()["scalars"]):
        assert len(seq) == len({e.step for e in seq}), f"{t}: two values at one step"

    epochs = {}
    for line in open(os.path.join(a.run, "metrics.jsonl")):
        j = json.loads(line)
        if not j.get("partial"):
            epochs[j["epoch"]] = j  # a later line of the same epoch wins (a resumed run)
    last_step = max(j["step"] for j in epochs.values())
    assert sorted(scalars["step/loss"]) == list(range(1, last_step + 1)), \
        f"step/loss at steps {sorted(scalars['step/loss'])[:5]}..., expected 1..{last_step}"
    assert all(math.isfinite(v) and v > 0 for v in scalars["step/loss"].values())
    assert set(scalars["step/loss_scale"].values()) == {1.0}, "amp off: loss scale 1"

    names = ["background", "necrotic", "edema", "enhancing"]
    checked = 0
    for epoch, j in sorted(epochs.items()):
        s = j["step"]
        want = {"epoch/train_loss": j["train_loss"], "epoch/lr": j["lr"], "perf/slices_per_s": j["slices_per_s"],
                "perf/epoch_s": j["epoch_s"], "perf/data_wait": j["data_wait"],
                "perf/exposed_comm_s": j["exposed_comm_s"]}
        if "val" in j:
            want["val/mean_dice"] = j["val"]["mean_dice"]
            want["val/mean_iou"] = j["val"]["mean_iou"]
            for c, name in enumerate(names):
                want[f"val/dice/{name}"] = j["val"]["dice"][c]
                want[f"val/iou/{name}"] = j["val"]["iou"][c]
        for tag, value in want.items():
            got = scalars.get(tag, {}).get(s)
            assert got is not None, f"epoch {epoch}: no {tag} at step {s}"
            assert got == np.float32(value), f"epoch {epoch}: {tag} is {got} in TensorBoard, {value} in metrics.jsonl"
            checked += 1
        for tag in [t for t in scalars if t.startswith(("epoch/", "val/", "perf/"))]:
            extra = set(scalars[tag]) - {jj["step"] for jj in epochs.values()}
            assert not extra, f"{tag} at steps {sorted(extra)} that no finished epoch of metrics.jsonl has"

    images = acc.Tags()["images"]
    want_epochs = [int(e) for e in a.images_at_epochs.split(",") if e]
    for tag in images:
        got = sorted(e.step for e in acc.Images(tag))
        assert got == [epochs[e]["step"] for e in want_epochs], f"{tag} at steps {got}, expected epochs {want_epochs}"
        for e in acc.Images(tag):
            img = Image.open(io.BytesIO(e.encoded_image_string))
            assert img.size == (e.width, e.height), f"{tag}: PNG {img.size}, header {e.width}x{e.height}"
            colours = img.convert("RGB").getcolors(maxcolors=1 << 24)
            assert len(colours) > 50, f"{tag}: a nearly blank image ({len(colours)} colours)"
    assert (len(images) > 0) == bool(want_epochs), f"images: {images}"
    print(f"{len(files)} event file(s): {len(steps)} steps in order, {checked} epoch scalars equal to metrics.jsonl "
          f"over {len(epochs)} epochs, {len(images)} overlay tag(s) at epochs {want_epochs}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
