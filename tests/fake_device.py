"""A stand-in for a CUDA tensor on the CPU: it computes as usual but refuses ``numpy()`` until moved with ``.cpu()``,
exactly where a real CUDA tensor raises. CI has no GPU, so a path that forgets ``.cpu()`` fails here too instead of
only on the GPU box (diagnose crashed there so: "can't convert cuda:0 device type tensor to numpy")."""

from __future__ import annotations

from typing import Any

import torch


class FakeCudaTensor(torch.Tensor):
    """Every op on it gives another one (``__torch_function__`` keeps the subclass); ``cpu()`` gives a plain tensor."""

    def numpy(self, *args: Any, **kwargs: Any):  # noqa: D102 - the message CUDA's own tensor raises
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
                        "host memory first.")

    def __array__(self, *args: Any, **kwargs: Any):
        return self.numpy()

    def cpu(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        with torch._C.DisableTorchFunctionSubclass():
            return torch.Tensor.clone(self).as_subclass(torch.Tensor)

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        device = kwargs.get("device", args[0] if args and isinstance(args[0], (str, torch.device)) else None)
        if device is not None and torch.device(device).type == "cpu":
            return self.cpu()
        return super().to(*args, **kwargs)


def on_fake_cuda(x: Any) -> Any:
    """Tensors (in tuples, lists and dicts too) as FakeCudaTensors."""
    if isinstance(x, torch.Tensor):
        return x.as_subclass(FakeCudaTensor)
    if isinstance(x, (tuple, list)):
        return type(x)(on_fake_cuda(v) for v in x)
    if isinstance(x, dict):
        return {k: on_fake_cuda(v) for k, v in x.items()}
    return x


def model_outputs_on_fake_cuda(monkeypatch, cls: type, *methods: str) -> None:
    """Every call of ``cls.method`` returns its tensors as if the model sat on a GPU."""
    for name in methods:
        original = getattr(cls, name)

        def patched(self, *args: Any, __original=original, **kwargs: Any) -> Any:
            return on_fake_cuda(__original(self, *args, **kwargs))

        monkeypatch.setattr(cls, name, patched)
