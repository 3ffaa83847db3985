"""Training AgingMapGAN: one step on random patches (``trainer``), its losses (``losses``: the paper's Eq. 1-4
and the per-sign terms the shipped weights use), the batches with their maps (``data``, ``maps``), each face's
zones placed from its own landmarks (``placement``) and the weak per-sign labels (``sign_scores``)."""
