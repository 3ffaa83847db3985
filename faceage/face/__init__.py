"""Photo -> faces: detection (``detect``: YuNet boxes, any orientation), landmarks (``mesh``: the 468-point
Face Mesh mapped onto the 68-point frame), alignment into UTKFace's canonical crop (``align``) and the
step that chains them for a photo (``pipeline.find_faces``).

Nothing is imported with the package: training code that needs only the alignment template (AMGAN's
aging maps) runs where OpenCV's detector or LiteRT are not installed (``tests/test_train_imports.py``).
"""
