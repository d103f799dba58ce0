"""Drive the `segsynth web` page in headless Chromium (Playwright, sync API).

Chromium's fake camera plays --clip (a .y4m file); the page sends it to the
server over WebRTC and shows the processed stream in <video id="out">. This
script waits until that video has decoded --frames frames (or --timeout
seconds pass), saves one output frame at its real resolution as a PNG, and
prints ONE line of JSON to stdout:

  {"frames", "seconds", "video_width", "video_height", "stats", "status", "reached"}

Exit status: 0 when --frames was reached, 1 when not, 2 when Chromium or
Playwright is missing. Console messages and page errors go to stderr.
Called as a subprocess by the Rust integration test.
"""
import argparse
import base64
import json
import os
import sys
import time

CHROMIUM = "/usr/bin/chromium"

FRAMES_JS = """() => {
  const v = document.getElementById('out');
  return v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
}"""

# The output video's current frame drawn on a canvas `c` (context `g`) at its real size;
# without a frame yet, the snippet that follows returns `none`.
def on_canvas(none, then):
    return """() => {
  const v = document.getElementById('out');
  if (!v || !v.videoWidth || !v.videoHeight) return %s;
  const c = document.createElement('canvas');
  c.width = v.videoWidth;
  c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0, c.width, c.height);
%s
}""" % (none, then)


CAPTURE_JS = on_canvas("{w: 0, h: 0, png: null}", """\
  return {w: c.width, h: c.height, png: c.toDataURL('image/png')};""")

# Mean RGB of the output frame's top-right corner (the background in the test clip).
CORNER_JS = on_canvas("null", """\
  const x = Math.floor(c.width * 0.88), y = Math.floor(c.height * 0.02);
  const w = Math.max(1, Math.floor(c.width * 0.1)), h = Math.max(1, Math.floor(c.height * 0.1));
  const d = g.getImageData(x, y, w, h).data;
  const m = [0, 0, 0];
  for (let i = 0; i < d.length; i += 4) { m[0] += d[i]; m[1] += d[i + 1]; m[2] += d[i + 2]; }
  return m.map(v => v / (d.length / 4));""")


def wait_for_change(page, timeout):
    """Waits until the output's background corner changes colour (a picked content
    reaching the page through a live edit), at most `timeout` seconds."""
    before = page.evaluate(CORNER_JS)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = page.evaluate(CORNER_JS)
        if before and now and max(abs(a - b) for a, b in zip(before, now)) > 60:
            time.sleep(0.5)  # a few more frames of the new content
            return


def capture(page, path, logs):
    """Saves the output video's current frame as a PNG at its real size."""
    shot = page.evaluate(CAPTURE_JS)
    if shot["png"] and path:
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["png"].split(",", 1)[1]))
    elif not shot["png"]:
        logs.append("note: #out has no video size, no screenshot written")
    return shot


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--clip", required=True, help="y4m file for the fake camera")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--screenshot", help="PNG path for one output frame")
    ap.add_argument("--close-wait", type=float, default=0.0)
    ap.add_argument("--switch", help="then pick this content spec in the page's picker")
    ap.add_argument("--screenshot2",
                    help="PNG path for an output frame once --switch shows (the background "
                         "corner changed colour) or 15 s after it")
    ap.add_argument("--ignore-https-errors", action="store_true",
                    help="accept a self-signed certificate (the HTTPS test)")
    ap.add_argument("--page-shot", help="a screenshot of the whole page at the end (.png or .jpg)")
    args = ap.parse_args()

    if not os.path.exists(CHROMIUM):
        print(f"error: {CHROMIUM} not found (install Debian's chromium package)", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("error: playwright is not importable (pip install playwright)", file=sys.stderr)
        return 2

    logs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={args.clip}",
            "--use-fake-ui-for-media-stream",
            "--no-sandbox",
            "--autoplay-policy=no-user-gesture-required",
        ])
        try:
            page = browser.new_context(ignore_https_errors=args.ignore_https_errors).new_page()
            page.on("console", lambda m: logs.append(f"console.{m.type}: {m.text}"))
            page.on("pageerror", lambda e: logs.append(f"pageerror: {e}"))
            page.goto(args.url, wait_until="load")
            t0 = time.monotonic()

            frames = 0
            while True:
                frames = page.evaluate(FRAMES_JS) or 0
                if frames >= args.frames or time.monotonic() - t0 >= args.timeout:
                    break
                time.sleep(0.1)
            seconds = time.monotonic() - t0
            reached = frames >= args.frames

            shot = capture(page, args.screenshot, logs)
            if args.switch:
                page.select_option("#content", value=args.switch)
                wait_for_change(page, 15.0)
                capture(page, args.screenshot2, logs)
            if args.page_shot:
                page.screenshot(path=args.page_shot, full_page=True)

            result = {
                "frames": frames,
                "seconds": round(seconds, 3),
                "video_width": shot["w"],
                "video_height": shot["h"],
                "stats": page.evaluate("() => window.segsynthStats || null"),
                "status": page.evaluate("() => (document.getElementById('status') || {}).textContent || ''"),
                "reached": reached,
            }
            print(json.dumps(result), flush=True)

            # Closing the tab fires pagehide, which DELETEs the session.
            page.close(run_before_unload=True)
            time.sleep(max(args.close_wait, 0.0))
        finally:
            browser.close()
            for line in logs:
                print(line, file=sys.stderr)
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
