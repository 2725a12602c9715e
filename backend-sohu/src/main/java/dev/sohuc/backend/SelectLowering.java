package dev.sohuc.backend;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.BinaryKind;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.Bcast;
import dev.sohuc.isa.BinOp;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.UnaryFn;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Comparisons and {@code where} (Mixtral's top-k routing: max-and-mask with {@code
 * greater_equal} and {@code where(.., -inf, ..)}). Bools live in HBM as one byte per element;
 * on the VPU they are f32 masks of 0.0 and 1.0.
 *
 * <pre>
 *   a >= b   ge(a, b)            (the vbin ge function)
 *   a <  b   (1 - ge(a, b)) * ge(m, m), m = max(a, b)  (m is NaN where a or b is)
 *   a <= b   ge(b, a)            (second operand full-shaped or a constant scalar)
 *   a >  b   (1 - ge(b, a)) * ge(m, m)                (likewise)
 *   a == b   ge(a, b) * ge(b, a) (likewise; 0 for NaN, as ge)
 *   not c    1 - c;  a and b: a * b;  a or b: max(a, b);  a xor b: |a - b|
 *   where(c, a, b) = vsel(c, a, b)  (each element copied from the side c picks)
 * </pre>
 *
 * Every comparison with NaN gives 0, as IEEE's.
 */
final class SelectLowering {
  private final Lowering l;
  private final Emitter e;

  SelectLowering(Lowering l) {
    this.l = l;
    this.e = l.emitter();
  }

  // ------------------------------------------------------------------------------------------
  // What is supported.

  static String compareReason(ElementwiseOp.Binary b, Map<Value, Tensor> known) {
    if (b.lhs().type().elementType() != ElementType.F32
        || b.rhs().type().elementType() != ElementType.F32) {
      return "comparison of " + b.lhs().type().elementType() + " values (only f32)";
    }
    Lowering.BinaryPlan p = Lowering.binaryPlan(b, known);
    if (p == null || p.bShape() == Lowering.Shape.PLANE) {
      return "broadcast of " + b.lhs().type() + " and " + b.rhs().type() + " is not supported";
    }
    if ((reversed(b.kind(), p) || b.kind() == BinaryKind.EQUAL) && p.imm() == null
        && p.bShape() != Lowering.Shape.FULL) {
      return b.kind().mnemonic() + " with a broadcast second operand (only >= and <)";
    }
    return null;
  }

  static String whereReason(ElementwiseOp.Where w, TensorType out, Map<Value, Tensor> known) {
    if (out.elementType() != ElementType.F32) {
      return "where of " + out.elementType() + " values (only f32)";
    }
    if (w.condition().type().elementType() != ElementType.BOOL
        || !sameShape(w.condition().type(), out)) {
      return "where with a condition that is not a bool tensor of the result's shape";
    }
    for (Value v : List.of(w.onTrue(), w.onFalse())) {
      if (imm(v, known) == null && !sameShape(v.type(), out)) {
        return "where with an operand that broadcasts (only full-shaped or constant scalars)";
      }
    }
    return null;
  }

  /** Whether the plan computes ge(b, a) rather than ge(a, b). */
  private static boolean reversed(BinaryKind k, Lowering.BinaryPlan p) {
    return (k == BinaryKind.LESS_EQUAL || k == BinaryKind.GREATER) != p.swapped();
  }

  private static boolean sameShape(TensorType t, TensorType out) {
    return Lowering.squeezeEq(t.dims(), out.dims());
  }

  private static Float imm(Value v, Map<Value, Tensor> known) {
    Tensor t = known.get(v);
    return t == null || t.size() != 1 || !t.isFloat() ? null : (float) t.get(0);
  }

  // ------------------------------------------------------------------------------------------
  // Lowerings.

  /**
   * The row stream of an op over its result's rows: their count and width (registers), the f32
   * and bool row strides (registers) and bytes, and the tile rows for {@code buffers} f32 rows of
   * SRAM each.
   */
  private record Rows(int rows, int cols, int rs, int boolRs, long rowBytes, long boolBytes,
      long tile) {}

  private Rows rows(Node n, long buffers) {
    Lowering.View v = Lowering.view(n.result().type());
    long rowBytes = v.cols() * 4;
    return new Rows(l.dimReg(v.rows()), e.konst(v.cols()), e.konst(rowBytes), e.konst(v.cols()),
        rowBytes, v.cols(), l.tileRows(buffers * rowBytes, v.cols() == 1 ? 1024 : 128));
  }

  void compare(Node n, ElementwiseOp.Binary bin) {
    Lowering.BinaryPlan p = Lowering.binaryPlan(bin, l.known());
    boolean rev = reversed(bin.kind(), p);
    boolean negate = bin.kind() == BinaryKind.LESS || bin.kind() == BinaryKind.GREATER;
    boolean equal = bin.kind() == BinaryKind.EQUAL;
    Rows g = rows(n, equal || negate ? 6 : 5);
    int mask = e.li(l.sram(g.tile() * g.rowBytes(), "f32 mask tile"));
    // equal: the converse comparison; lt and gt: where neither operand is NaN
    int second = equal || negate ? e.li(l.sram(g.tile() * g.rowBytes(), "second f32 mask")) : 0;
    int a = e.li(l.addr(p.a()));
    int dst = e.li(l.addr(n.result()));
    List<Lowering.In> ins = new ArrayList<>(List.of(new Lowering.In(a, g.rowBytes(), g.rowBytes())));
    int b = 0;
    Bcast bc = Bcast.NONE;
    int bRs = g.rs();
    if (p.imm() == null) {
      switch (p.bShape()) {
        case FULL -> {
          b = e.li(l.addr(p.b()));
          ins.add(new Lowering.In(b, g.rowBytes(), g.rowBytes()));
        }
        case COL -> {
          b = e.li(l.addr(p.b()));
          bRs = e.konst(4);
          bc = Bcast.COL;
          ins.add(new Lowering.In(b, 4, 4));
        }
        case ROW, SCALAR -> {
          b = e.li(l.preload(p.b(), p.bShape() == Lowering.Shape.ROW ? g.rowBytes() : 4,
              "broadcast operand"));
          bRs = 0;
          bc = p.bShape() == Lowering.Shape.ROW ? Bcast.ROW : Bcast.SCALAR;
        }
        default -> throw new BackendException(n.describe() + ": unsupported broadcast");
      }
    }
    final int bFixed = b;
    final int bStride = bRs;
    final Bcast bcast = bc;
    final boolean streamedB = ins.size() == 2;
    l.rowStream(g.rows(), g.tile(), ins, dst, g.boolBytes(), g.boolBytes(), (in, out, r, s) -> {
      if (p.imm() != null) {
        e.vbini(BinOp.GE, mask, g.rs(), in[0], g.rs(), p.imm(), r, g.cols(), rev);
      } else {
        int bb = streamedB ? in[1] : bFixed;
        if (rev) {
          e.vbin(BinOp.GE, mask, g.rs(), bb, bStride, in[0], g.rs(), r, g.cols(), Bcast.NONE);
        } else {
          e.vbin(BinOp.GE, mask, g.rs(), in[0], g.rs(), bb, bStride, r, g.cols(), bcast);
        }
      }
      if (negate) {
        // 1 - ge is 1 where an operand is NaN too: max(a, b) is NaN exactly there, and
        // ge(m, m) 0 there, 1 elsewhere
        e.vbini(BinOp.SUB, mask, g.rs(), mask, g.rs(), 1.0f, r, g.cols(), true);
        if (p.imm() != null) {
          e.vbini(BinOp.MAX, second, g.rs(), in[0], g.rs(), p.imm(), r, g.cols(), false);
        } else {
          e.vbin(BinOp.MAX, second, g.rs(), in[0], g.rs(), streamedB ? in[1] : bFixed, bStride, r,
              g.cols(), bcast);
        }
        e.vbin(BinOp.GE, second, g.rs(), second, g.rs(), second, g.rs(), r, g.cols(), Bcast.NONE);
        e.vbin(BinOp.MUL, mask, g.rs(), mask, g.rs(), second, g.rs(), r, g.cols(), Bcast.NONE);
      }
      if (equal) {
        // the converse comparison (b full-shaped or an immediate: compareReason)
        if (p.imm() != null) {
          e.vbini(BinOp.GE, second, g.rs(), in[0], g.rs(), p.imm(), r, g.cols(), !rev);
        } else if (rev) {
          e.vbin(BinOp.GE, second, g.rs(), in[0], g.rs(), in[1], g.rs(), r, g.cols(), Bcast.NONE);
        } else {
          e.vbin(BinOp.GE, second, g.rs(), in[1], g.rs(), in[0], g.rs(), r, g.cols(), Bcast.NONE);
        }
        e.vbin(BinOp.MUL, mask, g.rs(), mask, g.rs(), second, g.rs(), r, g.cols(), Bcast.NONE);
      }
      e.cvt(out, g.boolRs(), DType.I8, mask, g.rs(), DType.F32, r, g.cols());
    });
    e.free(g.rows(), mask, second, a, dst, b);
  }

  /** and, or, xor of two bools of the result's shape (Legalization): on their f32 masks. */
  void logical(Node n, ElementwiseOp.Binary bin) {
    Rows g = rows(n, 4);
    int ma = e.li(l.sram(g.tile() * g.rowBytes(), "f32 mask of a"));
    int mb = e.li(l.sram(g.tile() * g.rowBytes(), "f32 mask of b"));
    int a = e.li(l.addr(bin.lhs()));
    int b = e.li(l.addr(bin.rhs()));
    int dst = e.li(l.addr(n.result()));
    List<Lowering.In> ins = List.of(new Lowering.In(a, g.boolBytes(), g.boolBytes()),
        new Lowering.In(b, g.boolBytes(), g.boolBytes()));
    l.rowStream(g.rows(), g.tile(), ins, dst, g.boolBytes(), g.boolBytes(), (in, out, r, s) -> {
      e.cvt(ma, g.rs(), DType.F32, in[0], g.boolRs(), DType.I8, r, g.cols());
      e.cvt(mb, g.rs(), DType.F32, in[1], g.boolRs(), DType.I8, r, g.cols());
      switch (bin.kind()) {
        case AND -> e.vbin(BinOp.MUL, ma, g.rs(), ma, g.rs(), mb, g.rs(), r, g.cols(), Bcast.NONE);
        case OR -> e.vbin(BinOp.MAX, ma, g.rs(), ma, g.rs(), mb, g.rs(), r, g.cols(), Bcast.NONE);
        default -> {
          // xor: |a - b|
          e.vbin(BinOp.SUB, ma, g.rs(), ma, g.rs(), mb, g.rs(), r, g.cols(), Bcast.NONE);
          e.vun(UnaryFn.ABS, ma, g.rs(), ma, g.rs(), r, g.cols());
        }
      }
      e.cvt(out, g.boolRs(), DType.I8, ma, g.rs(), DType.F32, r, g.cols());
    });
    e.free(g.rows(), ma, mb, a, b, dst);
  }

  /** A bool's negation: its f32 mask m as 1 - m. */
  void not(Node n, Value x) {
    Rows g = rows(n, 3);
    int mask = e.li(l.sram(g.tile() * g.rowBytes(), "f32 mask tile"));
    int src = e.li(l.addr(x));
    int dst = e.li(l.addr(n.result()));
    List<Lowering.In> ins = List.of(new Lowering.In(src, g.boolBytes(), g.boolBytes()));
    l.rowStream(g.rows(), g.tile(), ins, dst, g.boolBytes(), g.boolBytes(), (in, out, r, s) -> {
      e.cvt(mask, g.rs(), DType.F32, in[0], g.boolRs(), DType.I8, r, g.cols());
      e.vbini(BinOp.SUB, mask, g.rs(), mask, g.rs(), 1.0f, r, g.cols(), true);
      e.cvt(out, g.boolRs(), DType.I8, mask, g.rs(), DType.F32, r, g.cols());
    });
    e.free(g.rows(), mask, src, dst);
  }

  void where(Node n, ElementwiseOp.Where w) {
    Rows g = rows(n, 6);
    int c = e.li(l.addr(w.condition()));
    int dst = e.li(l.addr(n.result()));
    List<Lowering.In> ins = new ArrayList<>(List.of(
        new Lowering.In(c, g.boolBytes(), g.boolBytes())));
    Side a = side(w.onTrue(), ins, g.rowBytes(), "where's constant a");
    Side b = side(w.onFalse(), ins, g.rowBytes(), "where's constant b");
    l.rowStream(g.rows(), g.tile(), ins, dst, g.rowBytes(), g.rowBytes(), (in, out, r, s) ->
        e.vsel(out, g.rs(), in[0], g.boolRs(), a.reg(in), a.stride(g.rs()), b.reg(in),
            b.stride(g.rs()), r, g.cols(), a.bcast(), b.bcast()));
    e.free(g.rows(), c, dst, a.owned(), b.owned());
  }

  /**
   * One side of a where: streamed with the condition (input {@code index} of the row stream),
   * or a constant scalar preloaded once into SRAM at the register {@code owned} and broadcast.
   */
  private record Side(int index, int owned) {
    int reg(int[] in) {
      return index > 0 ? in[index] : owned;
    }

    int stride(int rowStride) {
      return index > 0 ? rowStride : 0;
    }

    Bcast bcast() {
      return index > 0 ? Bcast.NONE : Bcast.SCALAR;
    }
  }

  private Side side(Value x, List<Lowering.In> ins, long rowBytes, String what) {
    if (imm(x, l.known()) != null) {
      return new Side(0, e.li(l.preload(x, 4, what)));
    }
    int at = e.li(l.addr(x));
    ins.add(new Lowering.In(at, rowBytes, rowBytes));
    return new Side(ins.size() - 1, at);
  }
}
