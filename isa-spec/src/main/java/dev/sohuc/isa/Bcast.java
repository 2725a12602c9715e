package dev.sohuc.isa;

/** How a second operand (or a bias) is broadcast over a rows x cols tile. */
public enum Bcast implements AsmEnum {
  NONE("A full rows x cols tile: element (i, j)."),
  ROW("One row vector used for every row: element j."),
  COL("One value per row (a column vector): element i, at row stride."),
  SCALAR("One value for the whole tile: element 0.");

  private final String doc;

  Bcast(String doc) {
    this.doc = doc;
  }

  @Override
  public String doc() {
    return doc;
  }

  /** The rows of a {@code tileRows}-row tile such an operand holds: all, or one. */
  public long rows(long tileRows) {
    return this == NONE || this == COL ? tileRows : 1;
  }

  /** The columns of a {@code tileCols}-column tile such an operand holds: all, or one. */
  public int cols(int tileCols) {
    return this == NONE || this == ROW ? tileCols : 1;
  }
}
