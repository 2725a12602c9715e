package dev.sohuc.isa;

/** Row reductions of the VPU; sums are f32, sequential in column order. */
public enum RedOp implements AsmEnum {
  SUM("Sum of the row, accumulated in f32 from column 0 upwards."),
  MAX("Largest element of the row (NaN if any is NaN); -inf for an empty row."),
  MIN("Smallest element of the row (NaN if any is NaN); +inf for an empty row."),
  MEAN("The f32 sum divided by cols (one f32 division); NaN for an empty row.");

  private final String doc;

  RedOp(String doc) {
    this.doc = doc;
  }

  @Override
  public String doc() {
    return doc;
  }
}
