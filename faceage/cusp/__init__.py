"""CUSP (Gomez-Trenado et al., ECCV 2022): the networks (``model``: E_s, E_c, E_a, G, D), the mask M and
the skip blur it steers (``mask``: Eq. 1-2), the photo editor the app and the CLI use (``editor``), and
per-sign aging rendered by CUSP from an aging map (``map_render``).
"""
