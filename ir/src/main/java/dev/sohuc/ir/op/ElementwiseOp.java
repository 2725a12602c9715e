package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.util.List;

/** Ops that apply a scalar function to each element, with numpy broadcasting. */
public sealed interface ElementwiseOp extends Op, Op.Elementwise {

  /** Unary math. {@code not} takes bool; {@code neg} and {@code abs} any number; the rest floats. */
  enum UnaryKind {
    NEG, ABS, EXP, LOG, SQRT, RECIPROCAL, ERF, TANH, SIGMOID, RELU, SIN, COS, FLOOR, CEIL, NOT;

    public String mnemonic() {
      return name().toLowerCase();
    }
  }

  /** Binary math; comparisons give bool; {@code and}/{@code or}/{@code xor} take bool. */
  enum BinaryKind {
    ADD(true), SUB(false), MUL(true), DIV(false), POW(false), MAX(true), MIN(true), MOD(false),
    EQUAL(true), LESS(false), LESS_EQUAL(false), GREATER(false), GREATER_EQUAL(false),
    AND(true), OR(true), XOR(true);

    public final boolean commutative;

    BinaryKind(boolean commutative) {
      this.commutative = commutative;
    }

    public String mnemonic() {
      return name().toLowerCase();
    }

    public boolean isComparison() {
      return this == EQUAL || this == LESS || this == LESS_EQUAL || this == GREATER || this == GREATER_EQUAL;
    }

    public boolean isLogical() {
      return this == AND || this == OR || this == XOR;
    }
  }

  /**
   * {@code %y = exp %x : tensor<4 x f32>}.
   */
  record Unary(UnaryKind kind, Value x) implements ElementwiseOp {
    @Override
    public String mnemonic() {
      return kind.mnemonic();
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      ElementType t = x.type().elementType();
      switch (kind) {
        case NOT -> Shapes.requireType(x, "operand", ElementType.BOOL);
        case NEG, ABS -> {
          if (t == ElementType.BOOL) {
            throw new OpException("operand must be a number, got " + x.type());
          }
        }
        default -> Shapes.requireFloat(x, "operand");
      }
      return List.of(x.type());
    }
  }

  /**
   * {@code %z = add %x, %y : tensor<?seq x 384 x f32>}; shapes broadcast like numpy.
   */
  record Binary(BinaryKind kind, Value lhs, Value rhs) implements ElementwiseOp {
    @Override
    public String mnemonic() {
      return kind.mnemonic();
    }

    @Override
    public List<Value> operands() {
      return List.of(lhs, rhs);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      ElementType t = Shapes.sameElementType(operands(), "operands");
      if (kind.isLogical() && t != ElementType.BOOL) {
        throw new OpException("operands must be bool, got " + t);
      }
      if (!kind.isLogical() && kind != BinaryKind.EQUAL && t == ElementType.BOOL) {
        throw new OpException("operands must be numbers, got bool");
      }
      var dims = Shapes.broadcast(lhs.type().dims(), rhs.type().dims());
      return List.of(new TensorType(dims, kind.isComparison() ? ElementType.BOOL : t));
    }
  }

  /** {@code %r = where %cond, %a, %b}: {@code cond ? a : b}, all three broadcast. */
  record Where(Value condition, Value onTrue, Value onFalse) implements ElementwiseOp {
    @Override
    public String mnemonic() {
      return "where";
    }

    @Override
    public List<Value> operands() {
      return List.of(condition, onTrue, onFalse);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of();
    }

    @Override
    public List<TensorType> inferResultTypes() {
      Shapes.requireType(condition, "condition", ElementType.BOOL);
      ElementType t = Shapes.sameElementType(List.of(onTrue, onFalse), "the two branches");
      return List.of(new TensorType(Shapes.broadcast(operands()), t));
    }
  }

  /** {@code %r = clip %x {min = 0.0, max = 6.0}}: clamps into {@code [min, max]}. */
  record Clip(Value x, double min, double max) implements ElementwiseOp {
    @Override
    public String mnemonic() {
      return "clip";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(new Attr.Named("min", new Attr.Float(min)), new Attr.Named("max", new Attr.Float(max)));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      if (x.type().elementType() == ElementType.BOOL) {
        throw new OpException("operand must be a number, got bool");
      }
      if (min > max) {
        throw new OpException("min " + min + " is greater than max " + max);
      }
      return List.of(x.type());
    }
  }

  /**
   * {@code %r = cast %x {to = f32}}: float to int truncates toward zero, int to narrower int
   * wraps, anything to bool is {@code x != 0}, float to narrow float rounds to nearest even.
   */
  record Cast(Value x, ElementType to) implements ElementwiseOp {
    @Override
    public String mnemonic() {
      return "cast";
    }

    @Override
    public List<Value> operands() {
      return List.of(x);
    }

    @Override
    public List<Attr.Named> attributes() {
      return List.of(new Attr.Named("to", new Attr.Type(to)));
    }

    @Override
    public List<TensorType> inferResultTypes() {
      return List.of(x.type().withElementType(to));
    }
  }

  static void register(OpRegistry.Registrar r) {
    for (UnaryKind k : UnaryKind.values()) {
      r.op(k.mnemonic(), 1, "elementwise " + k.mnemonic(), (ops, a) -> new Unary(k, ops.get(0)));
    }
    for (BinaryKind k : BinaryKind.values()) {
      r.op(k.mnemonic(), 2, "elementwise " + k.mnemonic() + " with broadcasting",
          (ops, a) -> new Binary(k, ops.get(0), ops.get(1)));
    }
    r.op("where", 3, "select by a bool condition, with broadcasting",
        (ops, a) -> new Where(ops.get(0), ops.get(1), ops.get(2)));
    r.op("clip", 1, "clamp into [min, max]", (ops, a) -> new Clip(ops.get(0),
        a.getFloat("min", Double.NEGATIVE_INFINITY), a.getFloat("max", Double.POSITIVE_INFINITY)));
    r.op("cast", 1, "convert to another element type", (ops, a) -> new Cast(ops.get(0), a.getType("to")));
  }
}
