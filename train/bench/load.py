"""Load on the running app: concurrent gradio_client clients, each making a few edits; prints figures,
asserts nothing.

    PYTHONPATH=. python train/bench/load.py [--clients 20] [--edits 5] [--photos 20]

Starts ``python app.py`` as a child process (the shipped weights in assets/) on a free localhost port,
so it runs with the app's own queue and limits. Each client is a thread with its own
``gradio_client.Client``; client i uploads photo ``i % photos`` with every edit and asks ``/edit`` for
a new age each time, cycling through four, so a fifth edit moves the slider back to the first age and
must give the same image (sigma_m 8, sigma_g 4.5). With ``--photos`` equal to ``--clients``
(the default) every user has their own photo, more than the app's session cache holds, so many edits
pay for detection and encoding again. The photos are UTKFace test faces in 1024 x 1024 canvases
(needs ../shared).

Prints: throughput (edits/s over the whole burst), client-side latency p50/p90/p99 (upload, queue,
edit, PNG outputs, download), requests lost, whether equal settings gave equal images, and the server
process's RSS before the burst (after one warm-up edit), after it, and its peak.

``run_clients`` is also the workload of ``tests/test_load.py`` (tiny weights, in-process app).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from faceage.data.utkface import UTKFace

ROOT = Path(__file__).resolve().parents[2]
AGES = (20, 40, 60, 80)
SIGMA_M, SIGMA_G = 8.0, 4.5


@dataclass(frozen=True)
class Edit:
    """One request of one client: its settings, how long it took and what came back."""

    client: int
    photo: int
    age: float
    seconds: float
    digest: str | None
    """sha1 of the edited image's RGB pixels and shape; None if the request failed."""
    error: str | None = None


def settings(client: int, index: int, n_photos: int) -> tuple[int, float]:
    """(photo, age) of the ``index``-th edit of ``client``."""
    return client % n_photos, AGES[(client + index) % len(AGES)]


def digest(rgb: np.ndarray) -> str:
    """Identity of an image: sha1 of its shape and pixels."""
    return hashlib.sha1(str(rgb.shape).encode() + np.ascontiguousarray(rgb).tobytes()).hexdigest()


def run_clients(url: str, photos: list[Path], clients: int, edits: int) -> list[Edit]:
    """``clients`` threads, each with its own gradio_client, making ``edits`` ``/edit`` calls in turn."""
    from gradio_client import Client, handle_file

    def one_client(i: int) -> list[Edit]:
        client = Client(url, verbose=False)
        done = []
        for j in range(edits):
            photo, age = settings(i, j, len(photos))
            t = time.perf_counter()
            try:
                (_, after), _ = client.predict(
                    handle_file(str(photos[photo])), -1, age, SIGMA_M, SIGMA_G, api_name="/edit"
                )
                done.append(
                    Edit(i, photo, age, time.perf_counter() - t, digest(np.asarray(Image.open(after).convert("RGB"))))
                )
            except Exception as e:  # a lost or failed request is a figure here, not a crash
                done.append(Edit(i, photo, age, time.perf_counter() - t, None, f"{type(e).__name__}: {e}"))
        return done

    with ThreadPoolExecutor(clients) as pool:
        return [e for per_client in pool.map(one_client, range(clients)) for e in per_client]


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process, from /proc (Linux)."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, from /proc (Linux)."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


# --------------------------------------------------------------------------- the benchmark


def utk_photos(n: int, folder: Path) -> list[Path]:
    """``n`` PNG photos: UTKFace test faces (every 7th, so ages vary) at 600 px in 1024 x 1024 canvases."""

    faces = UTKFace(split="test", size=200, verify=False)
    paths = []
    for i in range(n):
        canvas = np.full((1024, 1024, 3), 90, np.uint8)
        face = Image.fromarray(faces.load(7 * i)).resize((600, 600), Image.LANCZOS)
        canvas[212:812, 212:812] = np.asarray(face)
        paths.append(folder / f"photo{i}.png")
        Image.fromarray(canvas).save(paths[-1])
    return paths


def start_app() -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free localhost port; returns the process and its URL once it answers."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "FACEAGE_HOST": "127.0.0.1",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with code {proc.returncode} before serving")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("app.py did not answer within 180 s")


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.array(seconds) * 1000, q))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--edits", type=int, default=5, help="edits per client")
    p.add_argument("--photos", type=int, default=None, help="distinct photos (default: one per client)")
    a = p.parse_args(argv)
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp:
        photos = utk_photos(a.photos or a.clients, Path(tmp))
        proc, url = start_app()
        try:
            Client(url, verbose=False).predict(
                handle_file(str(photos[0])), -1, 50, SIGMA_M, SIGMA_G, api_name="/edit"
            )  # warm-up: models loaded, first photo open
            rss_before = rss_mib(proc.pid)
            t = time.perf_counter()
            done = run_clients(url, photos, a.clients, a.edits)
            wall = time.perf_counter() - t
            time.sleep(2)  # let the server finish writing and releasing the last outputs
            rss_after, rss_peak = rss_mib(proc.pid), peak_rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)  # like Ctrl-C: the app's exit handlers remove its result files
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    ok = [e for e in done if e.error is None]
    by_setting: dict[tuple, set] = {}
    for e in ok:
        by_setting.setdefault((e.photo, e.age), set()).add(e.digest)
    seconds = [e.seconds for e in ok]
    print(
        f"machine: {os.cpu_count()} CPU cores, no GPU; date {time.strftime('%Y-%m-%d')}; "
        "shipped weights assets/cusp_utkface128.safetensors"
    )
    print(f"load: {a.clients} clients x {a.edits} edits, {len(photos)} distinct 1024x1024 photos")
    print(
        f"answered {len(ok)}/{len(done)}, lost or failed {len(done) - len(ok)}"
        + (f" (first: {next(e.error for e in done if e.error)})" if len(ok) < len(done) else "")
    )
    print(f"equal settings gave equal images: {all(len(d) == 1 for d in by_setting.values())}")
    print(f"throughput: {len(ok) / wall:.2f} edits/s ({len(ok)} edits in {wall:.1f} s)")
    if seconds:
        print("latency: " + ", ".join(f"p{q} {percentile_ms(seconds, q):,.0f} ms" for q in (50, 90, 99)))
    print(f"server RSS: {rss_before:.0f} MiB before, {rss_after:.0f} MiB after, peak {rss_peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
