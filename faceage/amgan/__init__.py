"""AgingMapGAN (Despois et al.): the networks (``model``: the SPADE generator with attention and the critic),
the aging map and X/Y location maps built from a face's landmarks (``maps``, Sec. 3.1 and 3.4), and the photo
editor the app and the CLI use (``editor``).
"""
