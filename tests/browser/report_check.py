"""Opens an HTML report in headless Chromium with JavaScript on, over the DevTools
protocol on a pipe (--remote-debugging-pipe: no port, no extra package), and checks what
a person would see (tests/browser/report_test.sh):

    report_check.py PAGE.html --screenshot OUT.png [--canvases N] [--images N]

- the page loads with no console error, no uncaught exception and no failed load;
- every canvas has a non-zero size, holds a Chart.js chart and has ink on it, and there
  are at least N of them; every image decoded, with a non-zero size, at least N of them;
- a full-page screenshot (saved to OUT.png) is not blank: more than 256 distinct colours
  (a page of plain text has about 150, from its anti-aliasing),
  and most pixels differ from the page's background colour.
Prints one line of figures; exits 1 naming the first failed check.
"""
import argparse
import fcntl
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

from PIL import Image


class Browser:
    def __init__(self, exe, log):
        self.profile = tempfile.mkdtemp(prefix="strata-chromium-")
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4: move our ends out of
        # the way first, so that the dup2 calls in the child cannot clobber each other.
        high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)

        def child():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "--no-first-run",
                "--no-default-browser-check", "--hide-scrollbars", "--mute-audio", "about:blank"]
        self.proc = subprocess.Popen(args, preexec_fn=child, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log)
        os.close(high_r)
        os.close(high_w)
        self.w, self.r = to_chrome_w, from_chrome_r
        self.buffer = b""
        self.next_id = 0
        self.events = []

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from Chromium")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe (exit {self.proc.poll()})")
                self.buffer += chunk
        msg, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(msg)

    def wait_for(self, predicate, timeout=60):
        deadline = time.monotonic() + timeout
        for i, m in enumerate(self.events):
            if predicate(m):
                return self.events.pop(i)
        while True:
            m = self._read(deadline)
            if predicate(m):
                return m
            if "method" in m:
                self.events.append(m)

    def send(self, method, params=None, session=None, timeout=60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        reply = self.wait_for(lambda m: m.get("id") == msg["id"], timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})


MEASURE = r"""JSON.stringify({
  canvases: [...document.querySelectorAll('canvas')].map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++;
    return {id: c.id, w: c.clientWidth, h: c.clientHeight, chart: !!(window.Chart && Chart.getChart(c)), ink: ink};
  }),
  images: [...document.images].map(i => ({alt: i.alt, w: i.clientWidth, h: i.clientHeight,
                                          natural: i.naturalWidth, complete: i.complete})),
  // What shows behind the content: the body's colour, else the root's, else the
  // browser's white.
  background: [document.body, document.documentElement].map(e => getComputedStyle(e).backgroundColor)
                .find(c => c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') || 'rgb(255, 255, 255)',
  width: document.documentElement.scrollWidth,
  height: document.documentElement.scrollHeight})"""


def problems_in(events):
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append(f"uncaught exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description")))
                                                              for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.append(f"log error ({p['entry'].get('source')}): {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("page")
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--canvases", type=int, default=1)
    ap.add_argument("--images", type=int, default=0)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    a = ap.parse_args()

    log = open(a.screenshot + ".chromium.log", "w")
    b = Browser(a.chromium, log)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            b.send(f"{domain}.enable", session=s)
        b.send("Emulation.setDeviceMetricsOverride",
               {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, s)
        start = time.monotonic()
        b.send("Page.navigate", {"url": "file://" + os.path.abspath(a.page)}, s)
        b.wait_for(lambda m: m.get("method") == "Page.loadEventFired")
        load_s = time.monotonic() - start
        # Two animation frames: layout and the charts' first draw are done.
        b.send("Runtime.evaluate", {"expression": "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
                                    "awaitPromise": True}, s)
        res = b.send("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, s)
        if "exceptionDetails" in res:
            raise AssertionError(f"measuring the page failed: {res['exceptionDetails']}")
        page = json.loads(res["result"]["value"])
        height = min(page["height"], 16000)
        b.send("Emulation.setDeviceMetricsOverride",
               {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False}, s)
        b.send("Runtime.evaluate", {"expression": "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
                                    "awaitPromise": True}, s)
        shot = b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, s)
        # Anything the page logged until now counts.
        b.send("Runtime.evaluate", {"expression": "1"}, s)
    finally:
        b.close()
        log.close()

    import base64
    png = base64.b64decode(shot["data"])
    with open(a.screenshot, "wb") as f:
        f.write(png)

    problems = problems_in(b.events)
    assert not problems, "the page logged errors: " + "; ".join(problems)
    cv, im = page["canvases"], page["images"]
    assert len(cv) >= a.canvases, f"{len(cv)} canvas(es), expected at least {a.canvases}"
    for c in cv:
        assert c["w"] > 0 and c["h"] > 0, f"canvas {c['id']} is {c['w']}x{c['h']}"
        assert c["chart"], f"canvas {c['id']} holds no Chart.js chart"
        assert c["ink"] > 0, f"canvas {c['id']} is empty"
    assert len(im) >= a.images, f"{len(im)} image(s), expected at least {a.images}"
    for i in im:
        assert i["complete"] and i["natural"] > 0, f"image '{i['alt']}' did not decode"
        assert i["w"] > 0 and i["h"] > 0, f"image '{i['alt']}' is {i['w']}x{i['h']}"

    img = Image.open(io.BytesIO(png)).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 24)
    bg = tuple(int(v) for v in re.findall(r"\d+", page["background"])[:3])
    on_bg = sum(n for n, c in colours if c == bg)
    total = img.size[0] * img.size[1]
    assert len(colours) > 256, f"the screenshot has {len(colours)} colours: blank"
    assert on_bg < total / 2, f"{on_bg / total:.0%} of the screenshot is the background {bg}: mostly blank"
    print(f"loaded in {load_s:.2f} s, no console errors; {len(cv)} charts, {len(im)} images, all drawn; "
          f"screenshot {img.size[0]}x{img.size[1]} with {len(colours)} colours, {on_bg / total:.0%} background")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, RuntimeError, TimeoutError) as e:
        print(f"FAIL: {e}")
        sys.exit(1)
