"""Recognising the transformer in an ONNX graph: an abstract interpretation of its nodes.

Every ONNX value gets an abstract value. Values that do not depend on the input ids are
`Known` arrays: initializers, Constant nodes, and everything computed from them alone, folded
with onnx's reference evaluator. Shapes are known too: the sequence length T is given one
concrete length (`length`), chosen unlike any other size in the model, so shape arithmetic
(Shape, Gather, Concat, Range, masks built with Trilu or sliced from a buffer) folds to arrays.
Values that depend on the ids are activations, each with a layout: one label per axis,
'1' for a unit axis, 'T' for positions, 'S' for key positions, 'F' for the features of a vector,
'H'/'E' for a vector split into heads (feature index = h * E + e).

Activations are computed partly lazily. A MatMul by a constant matrix is a pending linear layer
that absorbs a following bias Add and scalar Mul/Div (a power-of-two scale becomes its post
shift), or is split by Split/Slice (fused q/k/v); RMSNorm is followed through its pieces
(square, mean, epsilon, sqrt, reciprocal, multiply, gain) or read from RMSNormalization; an
attention score matrix collects its scale and causal mask until Softmax, and the weights times
the values become the IR's scores, softmax_lut and mix. A pending value becomes IR ops
(`Tracer.vec`) when something else consumes it. The result is a seq-form body with generic
names and float constants, which match_decoder maps onto the decoder soulc compiles.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from soulc.errors import SoulcError
from soulc.ir.program import Op

PATTERNS = ("token embedding Gather + position embedding (Gather of a Range, or a Slice of the table); "
            "RMSNorm (Pow/Mul, ReduceMean, Add epsilon, Sqrt, Reciprocal or Div, Mul gain; or "
            "RMSNormalization); linear layers (MatMul or Gemm, optional bias Add, scalar Mul/Div; "
            "fused q/k/v split by Split or Slice); causal multi-head self-attention (Reshape/Transpose "
            "into heads, MatMul q.k^T, scalar scale, causal mask by Where or Add, Softmax, MatMul by v; "
            "or the Attention op); Relu; residual Add; final RMSNorm and output MatMul")

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
               onnx.TensorProto.BFLOAT16}
MASKED = -1e4           # a mask value at or below this excludes a position
MAX_EPSILON = 1e-3      # the integer RMSNorm's own floor on the mean square is 2^-8


Axes = tuple[tuple[str, int], ...]


def _axes(*pairs) -> Axes:
    return tuple(("1", 1) if n == 1 else (label, n) for label, n in pairs)


def _shape(axes: Axes) -> tuple[int, ...]:
    return tuple(n for _, n in axes)


def _labels(axes: Axes) -> list[str]:
    return [label for label, n in axes if n != 1]


@dataclass
class Known:
    value: np.ndarray
    source: str                         # the initializer or node output it came from
    full: np.ndarray | None = None      # a 2-D table whose leading rows this is
    full_source: str = ""               # where that table came from


@dataclass
class Ids:
    axes: Axes


@dataclass
class TokEmb:
    table: np.ndarray
    source: str
    axes: Axes


@dataclass
class Vec:
    """An IR value (a Q8.8 vector per position) times a pending float scale."""
    value: str
    width: int
    axes: Axes
    scale: float = 1.0


@dataclass
class Lin:
    """scale * (x @ weight.T + bias), not yet emitted."""
    x: Vec
    weight: np.ndarray
    bias: np.ndarray | None
    scale: float
    axes: Axes
    source: str
    done: Vec | None = None


@dataclass
class Square:
    x: Vec
    axes: Axes


@dataclass
class MeanSquare:
    x: Vec
    axes: Axes
    eps: float = 0.0
    root: bool = False          # sqrt taken
    inverse: bool = False       # reciprocal taken


@dataclass
class Normed:
    x: Vec
    gain: np.ndarray | None
    axes: Axes
    source: str
    done: Vec | None = None


@dataclass
class Scores:
    q: Vec
    k: Vec
    scale: float
    axes: Axes
    masked: bool = False


@dataclass
class Weights:
    scores: Scores
    axes: Axes


@dataclass
class Trace:
    """What the tracer found: a seq-form body over float constants with generic names."""
    body: list[Op]
    consts: dict[str, np.ndarray]
    sources: dict[str, str]                                 # constant -> ONNX name it came from
    nodes: dict[str, str] = field(default_factory=dict)     # IR value -> ONNX node it came from
    positions_computed: bool = False


MAX_FOLDED = 1 << 24        # values one folded constant may hold: far above any 8-bit soul


def _folded_size(node: onnx.NodeProto, inputs: list[np.ndarray]) -> int:
    """How many values folding a node makes, for the nodes whose output can dwarf their inputs."""
    try:
        if node.op_type == "ConstantOfShape" and inputs:
            return int(np.prod(inputs[0].astype(object), dtype=object))
        if node.op_type == "Expand" and len(inputs) == 2:
            dims = np.broadcast_shapes(inputs[0].shape, tuple(int(d) for d in inputs[1].reshape(-1)))
            return int(np.prod(np.array(dims, dtype=object), dtype=object))
        if node.op_type == "Tile" and len(inputs) == 2:
            return inputs[0].size * int(np.prod(inputs[1].astype(object), dtype=object))
        if node.op_type == "Range" and len(inputs) == 3:
            start, limit, delta = (float(v) for v in inputs)
            return int(max(0, np.ceil((limit - start) / delta))) if delta else 0
    except (ValueError, TypeError, OverflowError):
        return 0            # malformed: the evaluator reports it
    return max((a.size for a in inputs), default=0)


class Tracer:
    def __init__(self, model: onnx.ModelProto, where: str, ids: str, length: int, static: bool):
        self.model, self.where, self.ids, self.length, self.static = model, where, ids, length, static
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.env: dict[str, object] = {}
        self.body: list[Op] = []
        self.consts: dict[str, np.ndarray] = {}
        self.sources: dict[str, str] = {}
        self.nodes: dict[str, str] = {}
        self.node: onnx.NodeProto | None = None

    # --- errors -------------------------------------------------------------------------------

    def _node_name(self) -> str:
        return self.node.name or self.node.output[0]

    def unsupported(self, why: str) -> SoulcError:
        """A node soulc has rules for, used in a way none of them covers."""
        return SoulcError(f"{self.where}: node '{self._node_name()}' ({self.node.op_type}) {why}, which is "
                          f"not a pattern soulc compiles; it compiles: {PATTERNS}")

    def unknown_op(self) -> SoulcError:
        return SoulcError(f"{self.where}: unsupported ONNX op '{self.node.op_type}' (node '{self._node_name()}') "
                          f"on the model's activations; soulc compiles: {PATTERNS}")

    # --- emitting IR ---------------------------------------------------------------------------

    def emit(self, opcode: str, *args: str, **attrs) -> str:
        name = f"t{len(self.body)}"
        self.body.append(Op(opcode, list(args), attrs, name))
        self.nodes[name] = self._node_name() if self.node is not None else "graph output"
        return "%" + name

    def const(self, data: np.ndarray, source: str) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = np.asarray(data, dtype=np.float64)
        self.sources[name] = source
        return "@" + name

    def vec(self, v, what: str = "an activation") -> Vec:
        """The value as IR: emits a pending linear layer or RMSNorm."""
        if isinstance(v, Vec):
            return v
        if isinstance(v, Lin):
            if v.done is None:
                v.done = self._emit_linear(v)
            return v.done
        if isinstance(v, Normed):
            if v.done is None:
                gain = np.ones(v.x.width) if v.gain is None else v.gain
                if v.x.scale < 0:
                    gain = -gain
                r = self.emit("rmsnorm", v.x.value, self.const(gain, v.source))
                v.done = Vec(r, v.x.width, v.axes)
            return v.done
        if isinstance(v, TokEmb):
            raise self.unsupported("uses the token embedding before a position embedding was added to it")
        raise self.unsupported(f"uses {_describe(v)} as {what}")

    def plain(self, v, what: str = "an activation") -> Vec:
        """The value as IR with no pending scale."""
        x = self.vec(v, what)
        if x.scale != 1.0:
            raise self.unsupported(f"needs {what} that is not scaled, but it is multiplied by {x.scale:g} "
                                   "where no linear layer or attention can absorb the factor")
        return x

    def _emit_linear(self, lin: Lin) -> Vec:
        weight, bias, post = lin.weight, lin.bias, _post_shift(lin.scale)
        if post is None:                     # not a power of two: fold the factor into the weights
            weight, bias, post = weight * lin.scale, None if bias is None else bias * lin.scale, 0
        args = [self.const(weight, lin.source), lin.x.value]
        if bias is not None:
            args.append(self.const(bias, lin.source + " (bias)"))
        r = self.emit("matvec", *args, post=post)
        return Vec(r, weight.shape[0], lin.axes)

    # --- the walk ------------------------------------------------------------------------------

    def run(self) -> Trace:
        graph = self.model.graph
        for init in graph.initializer:
            self.env[init.name] = Known(numpy_helper.to_array(init), init.name)
        self.env[self.ids] = Ids(_axes(("1", 1), ("T", self.length)))
        for node in graph.node:
            self.node = node
            self._visit(node)
        self.node = None
        return self._finish(_output_of(graph))

    def _visit(self, node: onnx.NodeProto) -> None:
        args = []
        for name in node.input:
            if name and name not in self.env:
                raise SoulcError(f"{self.where}: node '{node.name}' reads '{name}', which nothing defines")
            args.append(self.env.get(name) if name else None)
        if node.domain not in ("", "ai.onnx"):
            raise self.unknown_op()
        if all(a is None or isinstance(a, Known) for a in args):
            results = self._fold(node, args)
        else:
            handler = getattr(self, "op_" + node.op_type, None)
            if handler is None:
                raise self.unknown_op()
            try:
                results = handler(node, *args)
            except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as e:
                # a malformed node (a 0 divisor, a dimension past the rank, ...) that no rule expects
                raise SoulcError(f"{self.where}: node '{self._node_name()}' ({node.op_type}) cannot be "
                                 f"compiled: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; "
                                 "check the export") from None
            if not isinstance(results, (list, tuple)):
                results = [results]
        for name, value in zip(node.output, results):
            if name:
                self.env[name] = value

    def _fold(self, node, args) -> list[Known]:
        from onnx.reference import ReferenceEvaluator
        feeds = {name: a.value for name, a in zip(node.input, args) if name}
        size = _folded_size(node, list(feeds.values()))
        if size > MAX_FOLDED:
            raise SoulcError(f"{self.where}: constant node '{self._node_name()}' ({node.op_type}) would make "
                             f"{size:,} values; soulc folds constants of at most {MAX_FOLDED:,}")
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")         # what matters is reported as an error below
                outputs = ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)
        except Exception as e:
            raise SoulcError(f"{self.where}: cannot evaluate constant node '{self._node_name()}' ({node.op_type}): "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        folded = []
        for name, out in zip(node.output, outputs):
            out = np.asarray(out)
            folded.append(Known(out, name, *_leading_rows(out, [a for a in args if a is not None])))
        return folded

    def _finish(self, output: str) -> Trace:
        value = self.env.get(output)
        self.node = helper.make_node("Identity", [output], [output], name=f"graph output '{output}'")
        x = self.plain(value, "the logits")
        if _labels(x.axes) != ["T", "F"] or x.axes[-1][0] != "F":
            raise self.unsupported(f"gives logits of layout {list(_shape(x.axes))} where soulc needs [1, T, vocab]")
        self.node = None
        self.emit("argmax", x.value)
        return Trace(self.body, self.consts, self.sources, self.nodes)

    # --- helpers on operands -------------------------------------------------------------------

    def attr(self, name, default=None):
        for a in self.node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def scalar(self, k) -> float | None:
        if isinstance(k, Known) and k.value.size == 1 and k.value.dtype.kind in "fiub":
            return float(k.value.reshape(()))
        return None

    def axes_input(self, args_index, attr_name="axes"):
        if len(self.node.input) > args_index and self.node.input[args_index]:
            k = self.env[self.node.input[args_index]]
            if not isinstance(k, Known):
                raise self.unsupported("has axes that are not constant")
            return [int(v) for v in k.value.reshape(-1)]
        value = self.attr(attr_name)
        return None if value is None else list(value)

    def per_feature(self, k: Known, axes: Axes) -> np.ndarray | None:
        """A constant broadcasting along the last (feature) axis only: its values, else None."""
        shape = k.value.shape
        if len(shape) > len(axes) or any(n != 1 for n in shape[:-1]):
            return None
        if not shape or shape[-1] == 1:
            return np.full(axes[-1][1], float(k.value.reshape(-1)[0]))
        return k.value.reshape(-1).astype(np.float64) if shape[-1] == axes[-1][1] else None

    def broadcasts(self, k: Known, axes: Axes) -> bool:
        try:
            return np.broadcast_shapes(k.value.shape, _shape(axes)) == _shape(axes)
        except ValueError:
            return False

    # --- layout ---------------------------------------------------------------------------------

    def relayout(self, v, axes: Axes):
        if isinstance(v, (Lin, Normed)):
            v = self.vec(v)
        if isinstance(v, Vec):
            return Vec(v.value, v.width, axes, v.scale)
        if isinstance(v, Ids):
            return Ids(axes)
        if isinstance(v, Scores):
            return Scores(v.q, v.k, v.scale, axes, v.masked)
        if isinstance(v, Weights):
            return Weights(v.scores, axes)
        if isinstance(v, MeanSquare):
            return MeanSquare(v.x, axes, v.eps, v.root, v.inverse)
        raise self.unsupported(f"rearranges {_describe(v)}")

    def reshaped(self, axes: Axes, dims: list[int]) -> Axes:
        src = [(label, n) for label, n in axes if n != 1]
        dst = [n for n in dims if n != 1]
        labels, i, j = [], 0, 0
        try:
            while i < len(src) or j < len(dst):
                a, b = [src[i]], [dst[j]]
                i, j = i + 1, j + 1
                pa, pb = a[0][1], b[0]
                while pa != pb:
                    if pa < pb:
                        a.append(src[i])
                        pa, i = pa * src[i][1], i + 1
                    else:
                        b.append(dst[j])
                        pb, j = pb * dst[j], j + 1
                names = [label for label, _ in a]
                if len(a) == len(b) == 1:
                    labels += names
                elif names == ["F"] and len(b) == 2:
                    labels += ["H", "E"]
                elif names == ["H", "E"] and len(b) == 1:
                    labels += ["F"]
                else:
                    raise IndexError
        except IndexError:
            raise self.unsupported(f"reshapes {_shape(axes)} to {tuple(dims)}, which mixes positions, "
                                   "heads and features in a way soulc does not follow") from None
        it = iter(labels)
        return _axes(*[("1", 1) if n == 1 else (next(it), n) for n in dims])

    def op_Reshape(self, node, x, shape):
        if not isinstance(shape, Known):
            raise self.unsupported("has a target shape that is not constant")
        dims = [int(d) for d in shape.value.reshape(-1)]
        old = _shape(x.axes)
        if not self.attr("allowzero", 0):
            dims = [old[i] if d == 0 else d for i, d in enumerate(dims)]
        if -1 in dims:
            rest = math.prod(d for d in dims if d != -1)
            dims[dims.index(-1)] = math.prod(old) // rest if rest else 0
        if math.prod(dims) != math.prod(old):
            raise self.unsupported(f"reshapes {old} to {tuple(dims)}, a different number of elements")
        return self.relayout(x, self.reshaped(x.axes, dims))

    def op_Flatten(self, node, x):
        axis = self.attr("axis", 1) % (len(x.axes) + 1)
        shape = _shape(x.axes)
        return self.relayout(x, self.reshaped(x.axes, [math.prod(shape[:axis]), math.prod(shape[axis:])]))

    def op_Transpose(self, node, x):
        perm = self.attr("perm") or list(reversed(range(len(x.axes))))
        return self.relayout(x, tuple(x.axes[p] for p in perm))

    def op_Unsqueeze(self, node, x, axes_in=None):
        axes = list(x.axes)
        rank = len(axes) + len(self.axes_input(1))
        for a in sorted(a % rank for a in self.axes_input(1)):
            axes.insert(a, ("1", 1))
        return self.relayout(x, tuple(axes))

    def op_Squeeze(self, node, x, axes_in=None):
        chosen = self.axes_input(1)
        rank = len(x.axes)
        drop = {a % rank for a in chosen} if chosen else {i for i, (_, n) in enumerate(x.axes) if n == 1}
        if any(x.axes[i][1] != 1 for i in drop):
            raise self.unsupported("squeezes an axis that is not 1")
        return self.relayout(x, tuple(a for i, a in enumerate(x.axes) if i not in drop))

    def op_Identity(self, node, x):
        return x

    def op_Dropout(self, node, x, ratio=None, training=None):
        if isinstance(training, Known) and bool(training.value):
            raise self.unsupported("is dropout in training mode (export the model in eval mode)")
        return [x, None]

    def op_Cast(self, node, x):
        to = self.attr("to")
        if isinstance(x, Ids) or to in FLOAT_TYPES:
            return x
        raise self.unsupported("casts an activation to a non-float type")

    def op_Shape(self, node, x):
        shape = np.array(_shape(x.axes), dtype=np.int64)
        start, end = self.attr("start", 0), self.attr("end", None)
        return Known(shape[start:end], node.output[0])

    def op_Size(self, node, x):
        return Known(np.array(math.prod(_shape(x.axes)), dtype=np.int64), node.output[0])

    # --- embedding --------------------------------------------------------------------------------

    def op_Gather(self, node, table, index):
        if isinstance(table, Known) and isinstance(index, Ids) and self.attr("axis", 0) == 0:
            if table.value.ndim != 2 or table.value.dtype.kind != "f":
                raise self.unsupported("gathers token ids from something that is not a 2-D float table")
            return TokEmb(table.value.astype(np.float64), table.source,
                          index.axes + _axes(("F", table.value.shape[1])))
        raise self.unsupported(f"gathers from {_describe(table)} by {_describe(index)}")

    def embed(self, tok: TokEmb, pos: Known) -> Vec:
        width = tok.table.shape[1]
        if not self.broadcasts(pos, tok.axes):
            raise self.unsupported(f"adds a {pos.value.shape} constant to the token embedding {_shape(tok.axes)}")
        rows = pos.value.reshape(-1, width) if pos.value.size % width == 0 else None
        if pos.full is not None:
            table, source = pos.full, pos.full_source
        elif rows is not None and rows.shape[0] == self.length and self.static:
            table, source = rows, pos.source
        else:
            raise self.unsupported("computes the position embedding in the graph instead of reading a table "
                                   "(soulc needs a learned position table, or an export with a fixed length)")
        r = self.emit("embed", self.const(tok.table, tok.source), self.const(table, source))
        return Vec(r, width, tok.axes)

    # --- arithmetic -------------------------------------------------------------------------------

    def op_Add(self, node, a, b):
        for x, y in ((a, b), (b, a)):
            if isinstance(x, TokEmb) and isinstance(y, Known):
                return self.embed(x, y)
            if isinstance(x, Lin) and isinstance(y, Known) and x.done is None:
                bias = self.per_feature(y, x.axes)
                if bias is None:
                    raise self.unsupported(f"adds a {y.value.shape} constant to a linear layer's "
                                           f"{_shape(x.axes)} output, which is not a bias")
                add = bias / x.scale
                return Lin(x.x, x.weight, add if x.bias is None else x.bias + add, x.scale, x.axes, x.source)
            if isinstance(x, MeanSquare) and not x.inverse and self.scalar(y) is not None:
                return MeanSquare(x.x, x.axes, x.eps + self.scalar(y), x.root)
            if isinstance(x, Scores) and isinstance(y, Known):
                return self.mask_add(x, y)
        if isinstance(a, (Known, Ids)) or isinstance(b, (Known, Ids)):
            raise self.unsupported(f"adds {_describe(a)} and {_describe(b)}")
        x, y = self.plain(a), self.plain(b)
        if x.axes != y.axes:
            raise self.unsupported(f"adds activations of layouts {_shape(x.axes)} and {_shape(y.axes)}")
        return Vec(self.emit("add", x.value, y.value), x.width, x.axes)

    def scaled(self, x, factor: float):
        if isinstance(x, Lin) and x.done is None:
            return Lin(x.x, x.weight, x.bias, x.scale * factor, x.axes, x.source)
        if isinstance(x, Scores):
            return Scores(x.q, x.k, x.scale * factor, x.axes, x.masked)
        if isinstance(x, TokEmb):
            return TokEmb(x.table * factor, x.source, x.axes)
        if isinstance(x, Normed) and x.done is None:
            gain = np.ones(x.x.width) if x.gain is None else x.gain
            return Normed(x.x, gain * factor, x.axes, x.source)
        if isinstance(x, (Vec, Lin, Normed)):
            v = self.vec(x)
            return Vec(v.value, v.width, v.axes, v.scale * factor)
        raise self.unsupported(f"scales {_describe(x)}")

    def op_Mul(self, node, a, b):
        if a is b and isinstance(a, (Vec, Lin, Normed)):
            return Square(self.vec(a), a.axes)
        for x, y in ((a, b), (b, a)):
            if isinstance(y, Known) and self.scalar(y) is not None and not isinstance(x, (Known, Ids)):
                if not isinstance(x, (MeanSquare, Square)):
                    return self.scaled(x, self.scalar(y))
            if isinstance(x, Normed) and x.done is None and isinstance(y, Known):
                gain = self.per_feature(y, x.axes)
                if gain is not None:
                    return Normed(x.x, gain if x.gain is None else x.gain * gain, x.axes, y.source)
            if isinstance(x, MeanSquare) and x.inverse and isinstance(y, (Vec, Lin, Normed)):
                return self.normed(self.vec(y), x)
        if isinstance(a, (Vec, Lin, Normed)) and isinstance(b, (Vec, Lin, Normed)) and \
                self.vec(a).value == self.vec(b).value:
            return Square(self.vec(a), a.axes)
        raise self.unsupported(f"multiplies {_describe(a)} by {_describe(b)}")

    def op_Div(self, node, a, b):
        if self.scalar(b) is not None and not isinstance(a, (Known, Ids, MeanSquare, Square)):
            return self.scaled(a, 1.0 / self.scalar(b))
        if isinstance(b, MeanSquare) and b.root and not b.inverse:
            if self.scalar(a) == 1.0:
                return MeanSquare(b.x, b.axes, b.eps, True, True)
            if isinstance(a, (Vec, Lin, Normed)):
                return self.normed(self.vec(a), b)
        raise self.unsupported(f"divides {_describe(a)} by {_describe(b)}")

    def op_Pow(self, node, x, power):
        p = self.scalar(power)
        if isinstance(x, (Vec, Lin, Normed)) and p == 2.0:
            return Square(self.vec(x), x.axes)
        if isinstance(x, MeanSquare) and not x.root and p == -0.5:
            return MeanSquare(x.x, x.axes, x.eps, True, True)
        if isinstance(x, MeanSquare) and x.root and not x.inverse and p == -1.0:
            return MeanSquare(x.x, x.axes, x.eps, True, True)
        raise self.unsupported(f"raises {_describe(x)} to the power {p:g}" if p is not None else
                               f"raises {_describe(x)} to a power that is not a constant")

    def op_ReduceMean(self, node, x, axes_in=None):
        axes = self.axes_input(1)
        rank = len(x.axes) if hasattr(x, "axes") else 0
        if not isinstance(x, Square) or axes is None or [a % rank for a in axes] != [rank - 1] \
                or x.axes[-1][0] != "F":
            raise self.unsupported(f"averages {_describe(x)}; soulc knows the mean of squares over the "
                                   "features of RMSNorm")
        keep = self.attr("keepdims", 1)
        return MeanSquare(x.x, x.axes[:-1] + ((("1", 1),) if keep else ()))

    def op_Sqrt(self, node, x):
        if isinstance(x, MeanSquare) and not x.root:
            return MeanSquare(x.x, x.axes, x.eps, True)
        raise self.unsupported(f"takes the square root of {_describe(x)}")

    def op_Reciprocal(self, node, x):
        if isinstance(x, MeanSquare) and x.root and not x.inverse:
            return MeanSquare(x.x, x.axes, x.eps, True, True)
        raise self.unsupported(f"takes the reciprocal of {_describe(x)}")

    def normed(self, x: Vec, rms: MeanSquare) -> Normed:
        if x.value != rms.x.value:
            raise self.unsupported("normalises one activation by the RMS of another")
        if rms.eps > MAX_EPSILON:
            raise self.unsupported(f"has an RMSNorm epsilon of {rms.eps:g}, larger than the {MAX_EPSILON:g} "
                                   "the integer RMSNorm (no epsilon) can stand for")
        return Normed(x, None, x.axes, self._node_name())

    def op_RMSNormalization(self, node, x, gain):
        x = self.vec(x)
        if self.attr("axis", -1) % len(x.axes) != len(x.axes) - 1 or x.axes[-1][0] != "F":
            raise self.unsupported("normalises over other axes than the features")
        if self.attr("epsilon", 1e-5) > MAX_EPSILON:
            raise self.unsupported(f"has epsilon {self.attr('epsilon', 1e-5):g}, larger than the {MAX_EPSILON:g} "
                                   "the integer RMSNorm (no epsilon) can stand for")
        g = self.per_feature(gain, x.axes) if isinstance(gain, Known) else None
        if g is None:
            raise self.unsupported("has a scale that is not a constant vector over the features")
        return Normed(x, g, x.axes, gain.source)

    def op_Relu(self, node, x):
        v = self.vec(x)
        if v.scale <= 0:
            v = self.plain(v)
        return Vec(self.emit("relu", v.value), v.width, v.axes, v.scale)

    # --- linear layers ----------------------------------------------------------------------------

    def linear(self, x, weight: np.ndarray, bias, scale: float, source: str) -> Lin:
        v = self.vec(x)
        if v.axes[-1][0] != "F" or v.axes[-1][1] != weight.shape[1]:
            raise self.unsupported(f"multiplies a {_shape(v.axes)} activation by a {weight.shape[::-1]} "
                                   "matrix; soulc needs the features in the last axis")
        if "H" in _labels(v.axes):
            raise self.unsupported("multiplies a vector split into heads by a matrix")
        return Lin(Vec(v.value, v.width, v.axes), weight * v.scale, bias, scale,
                   v.axes[:-1] + _axes(("F", weight.shape[0])), source)

    def op_MatMul(self, node, a, b):
        if isinstance(b, Known) and not isinstance(a, Known):
            w = b.value
            if w.dtype.kind != "f" or w.ndim < 2 or any(n != 1 for n in w.shape[:-2]):
                raise self.unsupported(f"multiplies an activation by a {w.shape} constant, not a matrix")
            return self.linear(a, w.reshape(w.shape[-2:]).T.astype(np.float64), None, 1.0, b.source)
        if isinstance(a, Weights):
            return self.mix(a, b)
        if isinstance(a, (Vec, Lin, Normed)) and isinstance(b, (Vec, Lin, Normed)):
            return self.scores(self.vec(a, "the queries"), self.vec(b, "the keys"))
        raise self.unsupported(f"multiplies {_describe(a)} by {_describe(b)}")

    def op_Gemm(self, node, a, b, c=None):
        if not isinstance(b, Known) or isinstance(a, Known) or self.attr("transA", 0):
            raise self.unsupported(f"multiplies {_describe(a)} by {_describe(b)}")
        w = b.value.astype(np.float64)
        w = (w if self.attr("transB", 0) else w.T) * self.attr("alpha", 1.0)
        lin = self.linear(a, w, None, 1.0, b.source)
        if c is not None:
            bias = self.per_feature(c, lin.axes) if isinstance(c, Known) else None
            if bias is None:
                raise self.unsupported("has a C input that is not a bias")
            lin.bias = bias * self.attr("beta", 1.0)
        return lin

    def op_Split(self, node, x, sizes=None):
        axis = self.attr("axis", 0) % len(x.axes)
        if not isinstance(x, Lin) or x.done is not None or axis != len(x.axes) - 1:
            raise self.unsupported(f"splits {_describe(x)}; soulc splits only a fused linear layer's outputs")
        total = x.weight.shape[0]
        if isinstance(sizes, Known):
            parts = [int(s) for s in sizes.value.reshape(-1)]
        elif self.attr("split") is not None:
            parts = list(self.attr("split"))
        else:
            count = self.attr("num_outputs", len(node.output))
            parts = [-(-total // count)] * (count - 1)
            parts.append(total - sum(parts))
        bounds = np.cumsum([0] + parts)
        return [self.rows(x, int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def op_Slice(self, node, x, starts, ends, axes=None, steps=None):
        known = [k for k in (starts, ends, axes, steps) if k is not None]
        if not all(isinstance(k, Known) for k in known):
            raise self.unsupported("has bounds that are not constant")
        rank = len(x.axes)
        axes_v = [int(a) % rank for a in axes.value] if axes is not None else list(range(len(starts.value)))
        steps_v = [int(s) for s in steps.value] if steps is not None else [1] * len(axes_v)
        if not isinstance(x, Lin) or x.done is not None or axes_v != [rank - 1] or steps_v != [1]:
            raise self.unsupported(f"slices {_describe(x)}; soulc slices only a fused linear layer's outputs")
        lo, hi, _ = slice(int(starts.value[0]), int(ends.value[0])).indices(x.weight.shape[0])
        return self.rows(x, lo, hi)

    def rows(self, x: Lin, lo: int, hi: int) -> Lin:
        bias = None if x.bias is None else x.bias[lo:hi]
        return Lin(x.x, x.weight[lo:hi], bias, x.scale, x.axes[:-1] + _axes(("F", hi - lo)),
                   f"{x.source}[{lo}:{hi}]")

    # --- attention --------------------------------------------------------------------------------

    def heads_of(self, v: Vec, last: tuple[str, str], what: str) -> tuple[int, tuple[str, ...]]:
        """Checks the last two axes are `last` (E standing for F too); returns heads, leading labels."""
        got = tuple(v.axes[-2:][i][0] for i in range(2)) if len(v.axes) >= 2 else ()
        if tuple("E" if g == "F" else g for g in got) != last:
            raise self.unsupported(f"takes {what} of layout {list(_shape(v.axes))} (axes {''.join(a for a, _ in v.axes)}), "
                                   f"not [..., {', '.join(last)}]")
        lead = tuple(_labels(v.axes[:-2]))
        if lead not in ((), ("H",)):
            raise self.unsupported(f"takes {what} with extra axes {lead}")
        heads = next((n for label, n in v.axes if label == "H"), 1)
        return heads, lead

    def scores(self, q: Vec, k: Vec) -> Scores:
        hq, lq = self.heads_of(q, ("T", "E"), "the query")
        hk, lk = self.heads_of(k, ("E", "T"), "the transposed key")
        if hq != hk or q.width != k.width:
            raise self.unsupported(f"pairs queries of {hq} heads with keys of {hk} heads")
        lead = q.axes[:-2] if len(q.axes) >= len(k.axes) else k.axes[:-2]
        return Scores(q, k, q.scale * k.scale, lead + _axes(("T", self.length), ("S", self.length)))

    def causal(self, masked: np.ndarray) -> bool:
        t = self.length
        want = np.triu(np.ones((t, t), dtype=bool), 1)
        return masked.shape[-2:] == (t, t) and all(np.array_equal(m, want) for m in masked.reshape(-1, t, t))

    def mask_add(self, s: Scores, mask: Known) -> Scores:
        m = mask.value
        if not self.broadcasts(mask, s.axes) or m.dtype.kind != "f":
            raise self.unsupported(f"adds a {m.shape} constant to attention scores that is not a causal mask")
        m = np.broadcast_to(m, _shape(s.axes)).astype(np.float64)
        excluded = m <= MASKED
        if np.any(m[~excluded] != 0) or not self.causal(excluded):
            if not excluded.any() and not m.any():
                return s
            raise self.unsupported("adds a mask to attention scores that is not causal")
        return Scores(s.q, s.k, s.scale, s.axes, True)

    def op_Where(self, node, cond, a, b):
        if isinstance(cond, Known) and isinstance(a, Scores) != isinstance(b, Scores):
            scores, fill = (a, b) if isinstance(a, Scores) else (b, a)
            fill_v = self.scalar(fill) if isinstance(fill, Known) else None
            if fill_v is not None and fill_v <= MASKED and self.broadcasts(cond, scores.axes):
                c = np.broadcast_to(cond.value.astype(bool), _shape(scores.axes))
                if self.causal(c if scores is b else ~c):
                    return Scores(scores.q, scores.k, scores.scale, scores.axes, True)
                raise self.unsupported("masks attention scores with a mask that is not causal")
        raise self.unsupported(f"selects between {_describe(a)} and {_describe(b)}")

    def op_Softmax(self, node, x):
        if not isinstance(x, Scores) or x.axes[self.attr("axis", -1) % len(x.axes)][0] != "S":
            raise self.unsupported(f"takes a softmax of {_describe(x)} (soulc knows the softmax of attention "
                                   "scores over the keys)")
        if not x.masked:
            raise self.unsupported("is attention without a causal mask (soulc compiles causal self-attention)")
        return Weights(x, x.axes)

    def mix(self, w: Weights, v) -> Vec:
        v = self.vec(v, "the values")
        heads, _ = self.heads_of(v, ("T", "E"), "the values")
        s = w.scores
        hq, _ = self.heads_of(s.q, ("T", "E"), "the query")
        if heads != hq or v.width != s.q.width:
            raise self.unsupported(f"mixes values of {heads} heads with attention weights of {hq} heads")
        return self.attention(s.q, s.k, v, s.scale, heads, w.axes[:-1] + (v.axes[-1],))

    def attention(self, q: Vec, k: Vec, v: Vec, scale: float, heads: int, axes: Axes) -> Vec:
        if not (math.isfinite(scale) and scale > 0):
            raise self.unsupported(f"has an attention scale of {scale:g}, which is not a positive number")
        s = self.emit("scores", q.value, k.value, heads=heads)
        w = self.emit("softmax_lut", s, self.const(np.array([scale]), self._node_name()))
        return Vec(self.emit("mix", w, v.value, heads=heads), v.width, axes, v.scale)

    def op_Attention(self, node, q, k, v, mask=None, past_k=None, past_v=None, *rest):
        if past_k is not None or past_v is not None or any(r is not None for r in rest) or \
                any(node.output[1:]) or self.attr("softcap", 0.0):
            raise self.unsupported("uses a KV cache, softcap or extra outputs of Attention")
        q, k, v = (self.vec(t, "an attention input") for t in (q, k, v))
        if len(q.axes) == 3:
            nq, nk = self.attr("q_num_heads"), self.attr("kv_num_heads")
            if not nq or nq != nk:
                raise self.unsupported("is 3-D attention without equal q_num_heads and kv_num_heads")
            q, k, v = (Vec(t.value, t.width, t.axes[:-1] + _axes(("H", nq), ("E", t.width // nq)), t.scale)
                       for t in (q, k, v))
            q, k, v = (Vec(t.value, t.width, (t.axes[0], t.axes[2], t.axes[1], t.axes[3]), t.scale)
                       for t in (q, k, v))
        heads, _ = self.heads_of(q, ("T", "E"), "the query")
        for t, what in ((k, "the keys"), (v, "the values")):
            if self.heads_of(t, ("T", "E"), what)[0] != heads or t.width != q.width:
                raise self.unsupported("has grouped or mismatched heads")
        causal = bool(self.attr("is_causal", 0))
        if mask is not None:
            s = Scores(q, k, 1.0, q.axes[:-2] + _axes(("T", self.length), ("S", self.length)))
            if not isinstance(mask, Known):
                raise self.unsupported("has a mask that is not constant")
            if mask.value.dtype == bool:
                if not self.causal(~np.broadcast_to(mask.value, _shape(s.axes))):
                    raise self.unsupported("has a mask that is not causal")
                causal = True
            else:
                causal = self.mask_add(s, mask).masked or causal
        if not causal:
            raise self.unsupported("is attention without a causal mask (soulc compiles causal self-attention)")
        e = q.width // heads
        scale = self.attr("scale", None) or 1 / math.sqrt(e)
        out = self.attention(self.vec(q), k, v, scale * q.scale * k.scale, heads, q.axes)
        if len(node.input) and len(self.env[node.input[0]].axes) == 3:
            return [Vec(out.value, out.width, self.env[node.input[0]].axes, out.scale)]
        return [out]


def _post_shift(scale: float) -> int | None:
    """p with scale == 2^-p, for a post shift; None when the scale is not such a power of two."""
    if scale <= 0:
        return None
    mantissa, exponent = math.frexp(scale)
    if mantissa != 0.5 or not -8 <= 1 - exponent <= 16:
        return None
    return 1 - exponent


def _leading_rows(out: np.ndarray, inputs: list[Known]) -> tuple[np.ndarray | None, str]:
    """When `out` is the first rows of a 2-D float table among the inputs (or of its table): that
    table and where it came from."""
    if out.dtype.kind != "f" or out.ndim < 2 or any(n != 1 for n in out.shape[:-2]):
        return None, ""
    rows = out.reshape(out.shape[-2:])
    for k in inputs:
        table, source = (k.full, k.full_source) if k.full is not None else (k.value, k.source)
        if table.dtype.kind == "f" and table.ndim == 2 and table.shape[1] == rows.shape[1] \
                and rows.shape[0] <= table.shape[0] \
                and np.array_equal(table[: rows.shape[0]], rows, equal_nan=True):
            return table, source
    return None, ""


def _output_of(graph) -> str:
    names = [o.name for o in graph.output]
    return "logits" if "logits" in names else names[0]


def _describe(v) -> str:
    kinds = {Known: "a constant", Ids: "the token ids", TokEmb: "the token embedding", Vec: "an activation",
             Lin: "a linear layer's output", Square: "a squared activation", MeanSquare: "a mean square",
             Normed: "a normalised activation", Scores: "attention scores", Weights: "attention weights"}
    text = kinds.get(type(v), "nothing" if v is None else type(v).__name__)
    if isinstance(v, Known):
        text += f" {list(v.value.shape)}"
    elif hasattr(v, "axes"):
        text += f" {list(_shape(v.axes))}"
    return text


def trace(model: onnx.ModelProto, where: str, ids: str, length: int, static: bool) -> Trace:
    """Traces the graph with the ids input `ids` of `length` positions (`static`: its only length)."""
    return Tracer(model, where, ids, length, static).run()
