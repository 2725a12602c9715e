package dev.sohuc.ir.op;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.TensorType;

import java.util.List;

/**
 * An IR operation: operands, attributes, and the rule that gives its result types. Ops are
 * immutable records grouped by category (a sealed sub-interface each), so passes and the
 * interpreter can switch over them exhaustively and rules can target a whole category.
 *
 * <p>Every op has one text form, {@code %r = mnemonic %a, %b {attr = v} : type loc("...")},
 * one factory in {@link OpRegistry} (used by the parser and by {@link #withOperands}), and
 * verifier rules that {@link #inferResultTypes} enforces by throwing {@link OpException}.
 */
public sealed interface Op
    permits ElementwiseOp, LinalgOp, DataOp, ReductionOp, SourceOp, QuantOp, TransformerOp {

  /** The op's name in IR text, e.g. {@code matmul}. */
  String mnemonic();

  List<Value> operands();

  /** Attributes in the order they are printed; defaults are printed too, so text is explicit. */
  List<Attr.Named> attributes();

  /** Checks the op's rules and returns its result types; throws {@link OpException}. */
  List<TensorType> inferResultTypes();

  /** The same op reading other operands (same count), for rewrites. */
  default Op withOperands(List<Value> newOperands) {
    return OpRegistry.create(mnemonic(), newOperands, Attributes.of(attributes()));
  }

  /** Marker: applies one scalar function element by element after broadcasting. */
  interface Elementwise {}

  /** Marker: operands may be swapped without changing the result. */
  interface Commutative {}
}
