"""What an exported model says about itself, in the ONNX file's metadata: its class
count, its inputs and their widths, and the vocabulary (index → name) when the export
was given one. `predict` checks data against it and names labels with it.

Keys (``metadata_props``, strings): ``yt8m.num_classes``, ``yt8m.inputs`` (JSON
{feature: width}), ``yt8m.vocabulary`` (JSON {index: name}). A model exported before
these existed still has its graph's shapes, which :func:`read_metadata` falls back to.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import onnx
import onnxruntime as ort

from yt8mkit.data.vocabulary import Vocabulary
from yt8mkit.errors import Yt8mError

NUM_CLASSES = "yt8m.num_classes"
INPUTS = "yt8m.inputs"
VOCABULARY = "yt8m.vocabulary"


@dataclass
class ModelMetadata:
    num_classes: int | None
    inputs: dict[str, int]
    names: dict[int, str] = field(default_factory=dict)

    def vocabulary(self) -> Vocabulary | None:
        return Vocabulary(names=dict(self.names), verticals={}) if self.names else None


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def add_metadata(path: str | os.PathLike[str], inputs: dict[str, int],
                 vocabulary: Vocabulary | None = None) -> int:
    """Write the metadata into the model at ``path`` (in place: the export's own working
    copy); returns the class count, read from the graph's output."""
    model = onnx.load(str(path))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    num_classes = dims[-1].dim_value if dims else 0
    if num_classes <= 0:
        raise Yt8mError(f"{path}: the model's output has no fixed class count")
    if vocabulary is not None and max(vocabulary.names) >= num_classes:
        raise Yt8mError(f"{vocabulary.path}: the vocabulary names class "
                        f"{max(vocabulary.names)}, the model has {num_classes} classes")
    props = {NUM_CLASSES: str(num_classes), INPUTS: json.dumps(inputs, sort_keys=True)}
    if vocabulary is not None:
        props[VOCABULARY] = json.dumps({str(k): v for k, v in sorted(vocabulary.names.items())},
                                       ensure_ascii=False)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return num_classes


def read_metadata(session: ort.InferenceSession) -> ModelMetadata:
    """The model's metadata, or what its graph's shapes say where it has none."""
    props = session.get_modelmeta().custom_metadata_map
    if NUM_CLASSES in props:
        names = {int(k): v for k, v in json.loads(props.get(VOCABULARY, "{}")).items()}
        return ModelMetadata(int(props[NUM_CLASSES]), json.loads(props[INPUTS]), names)
    inputs = {i.name: _static(i.shape[-1]) for i in session.get_inputs() if i.shape}
    return ModelMetadata(_static(session.get_outputs()[0].shape[-1]),
                         {k: v for k, v in inputs.items() if v is not None})
