"""The run log of the trainer: <run>/log.jsonl (one JSON event a line) and <run>/log.csv (one
row an epoch), in the format of `karat train`."""
import datetime
import json
import math
import os

CSV_COLUMNS = ["epoch", "step", "lr", "trainLoss", "trainAcc", "testLoss", "testTop1", "testTop5", "epochSeconds",
               "imagesPerSec", "cpuSeconds", "best"]


def _js_number(v):
    """Number.prototype.toPrecision(6) for non-integers, String(v) otherwise (as log.csv of karat train)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer()):
        return str(int(v))
    if v == 0:
        return "0.00000"
    e = math.floor(math.log10(abs(v)))
    s = f"{v:.5e}"
    m, ex = s.split("e")
    e = int(ex)
    if e < -6 or e >= 6:
        return f"{m}e{'+' if e >= 0 else '-'}{abs(e)}"
    return f"{v:.{max(0, 5 - e)}f}"


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{datetime.datetime.now(datetime.timezone.utc).microsecond // 1000:03d}Z"


def append_event(run_dir, typ, data):
    with open(os.path.join(run_dir, "log.jsonl"), "a") as f:
        f.write(json.dumps({"type": typ, "time": _now(), **data}, separators=(",", ":")) + "\n")


def append_epoch(run_dir, rec):
    append_event(run_dir, "epoch", rec)
    csv = os.path.join(run_dir, "log.csv")
    new = not os.path.exists(csv)
    with open(csv, "a") as f:
        if new:
            f.write(",".join(CSV_COLUMNS) + "\n")
        f.write(",".join(_js_number(rec[k]) for k in CSV_COLUMNS) + "\n")
