"""The face frame's measured data: the 68-point UTKFace template (``measure_template``) and the Face Mesh to
68-point mapping (``fit_mesh68``), both written to ``faceage/face/*.json``."""
