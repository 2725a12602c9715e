package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.List;

/** Ops without tensor operands that produce data: constants, fills, ranges, weights. */
public sealed interface SourceOp extends Op {

  @Override
  default List<Value> operands() {
    return List.of();
  }

  @Override
  default Op withOperands(List<Value> newOperands) {
    return this;
  }

  /** {@code %c = constant {value = dense<[1, 2]> : tensor<2 x i64>}}: small inline data. */
  record Constant(Tensor value) implements SourceOp {
    @Override
    public String mnemonic() {
      return "constant";
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(new Attr.Named("value", new Attr.Dense(value)));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      return List.of(value.type());
    }
  }

  /** {@code %m = fill {shape = [?seq, ?seq], value = -inf, dtype = f32}}: one value everywhere. */
  record Fill(List<Dim> shape, double value, ElementType dtype) implements SourceOp {
    public Fill {
      shape = List.copyOf(shape);
    }

    @Override
    public String mnemonic() {
      return "fill";
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.dims("shape", shape), Attr.Named.of("value", value), Attr.Named.of("dtype", dtype));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      for (Dim d : shape) {
        if (d.isStatic() && d.value() < 0) {
          throw new OpException("shape " + Shapes.dimsText(shape) + " has a negative dim");
        }
      }
      return List.of(new TensorType(shape, dtype));
    }
  }

  /** {@code %p = range {start = 0, limit = ?seq, delta = 1, dtype = i64}}: start, start+delta, ... below limit. */
  record Range(long start, Dim limit, long delta, ElementType dtype) implements SourceOp {
    @Override
    public String mnemonic() {
      return "range";
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(Attr.Named.of("start", start), Attr.Named.dims("limit", List.of(limit)),
          Attr.Named.of("delta", delta), Attr.Named.of("dtype", dtype));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      if (delta == 0) {
        throw new OpException("delta must not be 0");
      }
      Dim length;
      if (limit.isStatic()) {
        long span = limit.value() - start;
        length = Dim.of(Math.max(0, (span + delta + (delta > 0 ? -1 : 1)) / delta));
      } else if (delta == 1) {
        length = limit.minus(Dim.of(start));
      } else {
        throw new OpException("a range to a symbolic limit (" + limit + ") needs delta 1, got " + delta);
      }
      return List.of(new TensorType(List.of(length), dtype));
    }
  }

  /** {@code %w = weight {name = @encoder.w} : tensor<384 x 384 x f32>}: reads a module weight. */
  record WeightRef(String name, TensorType type) implements SourceOp {
    @Override
    public String mnemonic() {
      return "weight";
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(new Attr.Named("name", new Attr.SymbolRef(name)));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      return List.of(type);
    }
  }

  static void register(OpRegistry.Registrar r) {
    r.op("constant", 0, "inline constant data", (o, a) -> new Constant(a.getDense("value")));
    r.op("fill", 0, "a tensor of one value", (o, a) -> new Fill(a.getDims("shape"), a.getFloat("value"),
        a.getType("dtype")));
    r.op("range", 0, "an arithmetic sequence", (o, a) -> {
      List<Dim> limit = a.getDims("limit");
      if (limit.size() != 1) {
        throw new OpException("limit must be one dim, got " + Shapes.dimsText(limit));
      }
      return new Range(a.getInt("start", 0), limit.get(0), a.getInt("delta", 1), a.getType("dtype"));
    });
    r.op("weight", 0, "a module weight, by name", (o, a) -> {
      String name = a.getSymbol("name");
      return new WeightRef(name, a.weightType(name));
    });
  }
}
