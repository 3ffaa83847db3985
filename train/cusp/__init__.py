"""Training CUSP: one optimisation step (``trainer``: G and D steps, lazy R1, EMA) and its losses (``losses``:
L_r, L_C, L_D, L_cy; paper Sec. 3.3)."""
