"""Shared fixtures: tiny CUSP and AMGAN weights made on the fly, and a real face from UTKFace when available."""

import io
import os
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from faceage.amgan.model import AMGANConfig, AMGANGenerator
from faceage.checkpoint import save_checkpoint
from faceage.cusp.model import CUSPConfig, CUSPGenerator

UTK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface"
TINY_AMGAN = dict(g_base=8, g_max=16, n_down=2, n_bottleneck=1, spade_hidden=8, d_base=8, d_max=32, d_layers=3)
TINY_NET = dict(resolution=64, n_down=4, enc_base=8, enc_max=32, channel_base=1024, channel_max=32, age_dim=16)


@pytest.fixture(scope="module")
def one_thread():
    """The test machine is shared: one torch thread is faster than fighting for cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def free_port():
    """A function returning a free TCP port on 127.0.0.1 (for launching the app in-process)."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture(scope="module")
def app_server(tiny_weights, amgan_weights, free_port):
    """The app on tiny weights, served as ``app.py`` serves it, at a free localhost port: (url, App)."""
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    import app

    a = app.App(tiny_weights, amgan_weights=amgan_weights)
    demo = app.build(a)
    port = free_port()
    app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", a
    demo.close()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """Randomly initialised CUSP weights in the shipped format (enough to test plumbing, not quality)."""
    torch.manual_seed(0)
    T = CUSPGenerator(CUSPConfig(**TINY_NET))
    for p in T.parameters():
        if p.dim() == 0:  # noise strengths: make them matter so determinism tests can fail
            p.data.fill_(0.3)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    return save_checkpoint(path, T.state_dict(), {"kind": "cusp-generator", "net": TINY_NET, "step": 0})


@pytest.fixture(scope="session")
def amgan_weights(tmp_path_factory) -> Path:
    """Randomly initialised tiny AMGAN weights in the shipped format (64-px crops)."""
    torch.manual_seed(0)
    G = AMGANGenerator(AMGANConfig(**TINY_AMGAN))
    path = tmp_path_factory.mktemp("w") / "tiny_amgan.safetensors"
    manifest = {"kind": "amgan-generator", "config": G.cfg.to_dict(), "resolution": 64, "step": 0}
    return save_checkpoint(path, G.state_dict(), manifest)


def utk_test_crop(i: int = 0) -> np.ndarray:
    """The i-th test-split UTKFace crop (200x200 RGB); skips the test when the data is absent."""
    if not UTK.is_dir():
        pytest.skip("UTKFace not available (../shared/data/utkface)")
    from PIL import Image

    names = [n for n in (UTK / "test.txt").read_text().split() if n]
    want = set(names[i * 7 : i * 7 + 7])
    for shard in sorted(UTK.glob("*.tar")):
        with tarfile.open(shard) as tf:
            for m in tf:
                if m.name in want:
                    return np.asarray(Image.open(io.BytesIO(tf.extractfile(m).read())).convert("RGB"))
    pytest.skip("test crop not found")


@pytest.fixture(scope="session")
def face_photo() -> np.ndarray:
    """A 'full photo': a UTKFace test face scaled up on a larger textured background."""
    from PIL import Image

    face = Image.fromarray(utk_test_crop(0)).resize((300, 300), Image.LANCZOS)
    rng = np.random.default_rng(0)
    canvas = (rng.random((480, 640, 3)) * 60 + 100).astype(np.uint8)
    canvas[90:390, 170:470] = np.asarray(face)
    return canvas
