"""faceage training, evaluation and benchmarks (imports only torch, numpy, PIL, safetensors, tqdm, tensorboard)."""
