"""The learner's side of the PyTorch steps (04 and 05): torch as their probes use it.

Every function here runs in the learner's process (called by a step's probes, through `learner.probe`);
torch is imported here only, lazily, never in the judge.
"""


def torch_module():
    """torch, on one thread: the checks' tensors are tiny, and one thread is immune to a busy machine."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return torch
