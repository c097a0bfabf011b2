"""Thread settings of a PyTorch process (extraction and export jobs are sequential)."""
import torch


def set_threads(num_threads: int) -> None:
    """Intra-op threads for this process; one inter-op thread (a job is sequential)."""
    torch.set_num_threads(max(1, int(num_threads)))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:   # already set, or parallel work already started
        pass
